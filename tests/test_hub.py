"""Run folders load with `datasets.load_dataset(OUT)` (the run card's configs), and `--push-to-hub` uploads with
huggingface_hub to a local HTTP endpoint that records the upload (no network).

No models: a one-stage recipe (decode) runs on the generated bad-input corpus (espeak-ng speech + broken files)
with the local executor, so the run folder has several shards, errors, empty errors shards and `_inputs/`.
The endpoint implements only what `create_repo` + `upload_folder` call: POST /api/repos/create,
/api/validate-yaml (the README's metadata; here: it must parse as YAML front matter with a license),
/api/datasets/{repo}/preupload/{rev} (every file "regular": no LFS/Xet) and /api/datasets/{repo}/commit/{rev}
(NDJSON, base64 contents).
"""
from __future__ import annotations

import base64
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from slmfactory.manifests import generate

pytestmark = pytest.mark.skipif(not generate.have_espeak(), reason="espeak-ng is needed to generate test audio")

RECIPE = """name: decode_only
input: {kind: folder, root: "%s"}
output: "%s"
shard_size: 3
stages:
  - {uses: decode, batch_size: 4}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run folder (decode only, 3 inputs per shard); its card written here with the call the runner
    makes at the end of every run, so this test does not depend on the runner doing it."""
    from slmfactory.manifests.card import write_run_card
    from slmfactory.pipelines.runner import run_recipe

    root = tmp_path_factory.mktemp("hubrun")
    generate.make_bad_corpus(root / "bad")
    (root / "decode.yaml").write_text(RECIPE % (root / "bad", root / "run"))
    res = run_recipe(root / "decode.yaml", executor="local")
    write_run_card(root / "run", json.loads((root / "run" / "run.json").read_text()))
    return root / "run", res


def _load(path: Path, cache: Path, config: str | None = None):
    import datasets

    return datasets.load_dataset(str(path), config, split="train", cache_dir=str(cache))


def test_run_folder_loads_with_load_dataset(run, tmp_path):
    out, res = run
    empty = [f for f in (out / "errors").glob("*.parquet") if pq.ParquetFile(f).metadata.num_rows == 0]
    assert res.rows and res.errors and empty and (out / "_inputs").is_dir()  # the cases the card must handle
    rows = _load(out, tmp_path)
    assert len(rows) == res.rows and "audio_path" in rows.column_names and "_seq" not in rows.column_names
    assert set(rows["id"]) == {r["id"] for r in pq.read_table(out / "manifest").to_pylist()}
    errors = _load(out, tmp_path, "errors")
    assert len(errors) == res.errors and set(errors.column_names) >= {"id", "input", "stage", "reason"}
    card = (out / "README.md").read_text()
    assert "config_name: manifest" in card and "config_name: errors" in card and "packed" not in card
    # a second folder with the same name and other content is not served from the first one's cache
    other = tmp_path / "elsewhere" / out.name
    shutil.copytree(out, other, ignore=shutil.ignore_patterns(".lock"))
    first = sorted((other / "manifest").glob("*.parquet"))[0]
    n_first = pq.ParquetFile(first).metadata.num_rows
    first.unlink()
    from slmfactory.manifests.card import write_run_card

    write_run_card(other)
    assert len(_load(other, tmp_path)) == res.rows - n_first


class _Hub(BaseHTTPRequestHandler):
    """The three Hub endpoints `create_repo` and `upload_folder` call; records every request."""

    calls: list[tuple[str, str]] = []
    files: dict[str, bytes] = {}
    auth: set[str] = set()

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append(("POST", self.path))
        self.auth.add(self.headers.get("Authorization", ""))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "validate-yaml"]:
            import yaml

            text = json.loads(body)["content"]
            meta = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else None
            ok = isinstance(meta, dict) and meta.get("license")
            return self._reply(200 if ok else 400, {"errors": [] if ok else [{"message": "no YAML with a license"}],
                                                    "warnings": []})
        if parts[:3] == ["api", "repos", "create"]:
            req = json.loads(body)
            return self._reply(200, {"url": f"{base}/datasets/{req['organization']}/{req['name']}"})
        if parts[:2] == ["api", "datasets"] and parts[4:5] == ["preupload"]:
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if parts[:2] == ["api", "datasets"] and parts[4:5] == ["commit"]:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            repo = "/".join(parts[2:4])
            return self._reply(200, {"commitUrl": f"{base}/datasets/{repo}/commit/{'a' * 40}",
                                     "commitOid": "a" * 40, "pullRequestUrl": None})
        return self._reply(404, {"error": f"not implemented: {self.path}"})

    do_GET = do_PUT = do_HEAD = lambda self: (self.calls.append((self.command, self.path)),  # noqa: E731
                                               self._reply(404, {"error": "not implemented"}))


@pytest.fixture()
def hub(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _Hub.calls, _Hub.files, _Hub.auth = [], {}, set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_run_folder_and_export_to_a_local_hub(run, hub, tmp_path):
    from typer.testing import CliRunner

    from slmfactory.pipelines.cli import app

    out, _ = run
    res = CliRunner().invoke(app, ["export", str(out), "--push-to-hub", "me/decoded", "--endpoint", hub,
                                   "--token", "hf_test_token"])
    assert res.exit_code == 0, res.output
    assert ("POST", "/api/repos/create") in _Hub.calls and ("POST", "/api/validate-yaml") in _Hub.calls
    assert {"Bearer hf_test_token"} == _Hub.auth
    assert not [c for c in _Hub.calls if c[0] != "POST"]  # nothing else was asked of the Hub
    sent = set(_Hub.files)
    want = {"README.md", "run.json"} | {f"{d}/{p.name}" for d in ("manifest", "errors")
                                          for p in (out / d).glob("*.parquet")}
    assert sent == want  # no _inputs/, _state/, lock files
    assert _Hub.files["README.md"] == (out / "README.md").read_bytes()
    shard = next(p for p in sent if p.startswith("manifest/"))
    assert _Hub.files[shard] == (out / shard).read_bytes()
    # an export is pushed as written: the same layout the Hub's dataset viewer and load_dataset read
    _Hub.files.clear()
    from slmfactory.manifests.hub_push import push_to_hub

    fake = tmp_path / "export"
    (fake / "data").mkdir(parents=True)
    shutil.copy(next((out / "manifest").glob("*.parquet")), fake / "data" / "train-00000.parquet")
    (fake / "README.md").write_text("---\nlicense: other\n---\n# x\n")
    got = push_to_hub(fake, "me/exported", token="hf_test_token", endpoint=hub)
    assert set(_Hub.files) == set(got["files"]) == {"README.md", "data/train-00000.parquet"}
    assert got["url"].endswith("/datasets/me/exported")
