"""One run per output folder, one recipe per folder, resume that checks what it skips, artefacts in the
fingerprint, atomic artefacts rebuilt when broken, duplicate ids, and an embedded Ray on loopback only.
Audio: generated folder corpus (espeak-ng); k-means centroids are random (saved to tmp_path by the test)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from slmfactory.pipelines.recipe import RecipeError, load_recipe
from slmfactory.pipelines.runner import OutputBusy, OutputLock, run_recipe
from slmfactory.tokenize import kmeans as km

REPO = Path(__file__).resolve().parent.parent


def _ingest(root, out, **kw):
    return run_recipe("ingest", {"kind": "folder", "root": str(root), "out": str(out), "shard_size": 2, **kw},
                      executor="local")


@pytest.fixture(scope="module")
def ingested(corpora, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingested") / "out"
    res = _ingest(corpora["folder"], out)
    assert res.shards_total == 2 and res.rows == 4
    return out


def test_second_run_into_a_busy_folder_refuses_naming_the_holder(corpora, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    with OutputLock(out, load_recipe("ingest")):
        with pytest.raises(OutputBusy, match=rf"in use by another run .*\"pid\": {os.getpid()}.*{socket.gethostname()}"):
            _ingest(corpora["folder"], out)
        assert not (out / "manifest").exists(), "the second run wrote into the busy folder"
    assert _ingest(corpora["folder"], out).rows == 4  # released: the next run goes ahead


def test_a_lock_from_another_process_refuses_too(corpora, tmp_path):
    """A real second process holds the lock (as a concurrent CLI run would); a kill -9 of it frees the folder."""
    out = tmp_path / "busy2"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'{\"pid\": %d, \"command\": \"other run\"}' % os.getpid()); "
        "print('locked', flush=True); time.sleep(120)"), str(out / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputBusy, match=rf"pid\": {holder.pid}.*other run"):
            _ingest(corpora["folder"], out)
    finally:
        holder.kill()
        holder.wait()
    assert _ingest(corpora["folder"], out).rows == 4


def test_folder_of_another_recipe_is_refused_unless_force(corpora, ingested, tmp_path):
    out = tmp_path / "mixed"
    shutil.copytree(ingested, out)
    (out / "packed").mkdir()  # a finalize output of the other recipe (interleaved's packed/)
    (out / "packed" / "blocks-00000.parquet").write_bytes(b"old")
    p = tmp_path / "other.yaml"
    p.write_text(f"name: other\ninput: {{kind: folder, root: {corpora['folder']}}}\noutput: {out}\nstages: [decode]\n")
    with pytest.raises(RecipeError, match="holds the output of recipe 'ingest', not 'other'.*--force"):
        run_recipe(str(p), executor="local")
    assert (out / "packed" / "blocks-00000.parquet").exists()
    res = run_recipe(str(p), executor="local", force=True)
    assert res.rows == 4 and not (out / "packed").exists(), "the other recipe's packed/ was left mixed in"
    assert json.loads((out / ".slmfactory.json").read_text())["recipe"] == "other"
    assert json.loads((out / "run.json").read_text())["recipe"]["name"] == "other"


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_resume_recomputes_a_deleted_or_truncated_shard(corpora, ingested, tmp_path, damage):
    out = tmp_path / damage
    shutil.copytree(ingested, out)
    victim = out / "manifest" / "shard-00001.parquet"
    if damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    res = _ingest(corpora["folder"], out)
    assert res.shards_run == 1 and res.shards_skipped == 1 and res.rows == 4
    assert pl.read_parquet(str(out / "manifest" / "*.parquet")).height == 4


def test_relative_and_absolute_paths_are_the_same_run(corpora, ingested, tmp_path, monkeypatch):
    out = tmp_path / "rel"
    shutil.copytree(ingested, out)
    monkeypatch.chdir(tmp_path)
    res = run_recipe("ingest", {"kind": "folder", "root": os.path.relpath(corpora["folder"]), "out": "rel",
                                "shard_size": 2}, executor="local")
    assert res.shards_skipped == 2 and res.shards_run == 0


def _units_recipe(tmp_path, root, out, kmeans) -> Path:
    p = tmp_path / "units_km.yaml"
    p.write_text(f"name: units_km\nvars: {{root: {root}, out: {out}, km: {kmeans}}}\n"
                 "input: {kind: folder, root: '${root}'}\noutput: '${out}'\nshard_size: 2\nstages:\n"
                 "  - {uses: decode}\n  - {uses: tokenize, params: {tokenizer: spectral, kmeans: '${km}'}}\n")
    return p


def test_a_new_codebook_redoes_every_shard(corpora, tmp_path, monkeypatch):
    """The k-means file is part of the shard fingerprint (by content): a new codebook never mixes with old
    shards; the same codebook given by a relative path recomputes nothing."""
    rng = np.random.default_rng(0)
    prefix = tmp_path / "km" / "spectral-k8"
    km.KMeansModel(rng.normal(size=(8, 39)).astype(np.float32)).save(prefix)
    recipe = _units_recipe(tmp_path, corpora["folder"], tmp_path / "u", prefix)
    first = run_recipe(str(recipe), executor="local")
    assert first.shards_run == 2 and first.rows == 4
    monkeypatch.chdir(tmp_path)
    same = run_recipe(str(recipe), {"km": "km/spectral-k8", "out": "u"}, executor="local")
    assert same.shards_skipped == 2, "a relative path to the same codebook recomputed shards"
    km.KMeansModel(rng.normal(size=(8, 39)).astype(np.float32)).save(prefix)  # retrained: other centroids
    again = run_recipe(str(recipe), executor="local")
    assert again.shards_run == 2 and again.shards_skipped == 0
    units = pl.read_parquet(str(tmp_path / "u" / "manifest" / "*.parquet"))["tokenizer"].unique().to_list()
    assert len(units) == 1, f"shards of two codebooks mixed in one folder: {units}"


def test_a_zero_byte_kmeans_file_is_rebuilt(corpora, tmp_path):
    from slmfactory.pipelines.context import iter_input

    prefix = tmp_path / "km" / "spectral-k4"
    prefix.parent.mkdir()
    km.paths(prefix)[0].write_bytes(b"")  # what a kill or a full disk left behind before saves were atomic

    class Ctx:
        def iter_input(self):
            return iter_input({"kind": "folder", "root": str(corpora["folder"])})

    km.ensure_kmeans(Ctx(), str(prefix), k=4, hours=0.01, tokenizer="spectral")
    assert km.load(prefix).k == 4 and km.broken(prefix) is None
    assert not list(prefix.parent.glob(".*.tmp"))


def test_a_broken_text_tokenizer_is_rebuilt(tmp_path):
    from slmfactory.stages.texttok import TextTokenizer, train_text_tokenizer

    class Ctx:
        out_dir = tmp_path

        def iter_input(self):
            return iter([{"text": "the cat sat on the mat"}, {"text": "a dog ran in the park"}] * 5)

    folder = Path(train_text_tokenizer(Ctx(), vocab_size=40))
    good = (folder / "spm.model").read_bytes()
    (folder / "spm.model").write_bytes(good[:10])  # truncated by a kill or a full disk
    assert Path(train_text_tokenizer(Ctx(), vocab_size=40)) == folder
    assert (folder / "spm.model").read_bytes() == good and TextTokenizer(folder).encode("the cat")
    assert not list(folder.glob(".*"))


def test_duplicate_ids_become_error_rows(corpora, tmp_path):
    wav = sorted(Path(corpora["folder"]).rglob("*.wav"))[0]
    shutil.copy(wav, tmp_path / "a.wav")
    lines = [{"audio_path": "a.wav", "id": "same", "text": "one"}, {"audio_path": "a.wav", "id": "same", "text": "two"},
             {"audio_path": "a.wav", "id": "other", "text": "three"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = run_recipe("ingest", {"kind": "jsonl", "root": str(tmp_path / "m.jsonl"), "out": str(tmp_path / "o")},
                     executor="local")
    assert res.inputs == 3 and res.errors >= 1
    err = pq.read_table(tmp_path / "o" / "errors").to_pylist()
    dup = [e for e in err if "duplicate id" in e["reason"]]
    assert len(dup) == 1 and "m.jsonl:2" in dup[0]["input"] and "m.jsonl:1" in dup[0]["reason"], err
    ids = pl.read_parquet(str(tmp_path / "o" / "manifest" / "*.parquet"))["id"].to_list()
    assert len(ids) == len(set(ids))


LISTENERS = r"""
import json, sys, psutil
from slmfactory.pipelines.runner import _init_ray
_init_ray(None)
import ray
ray.get(ray.remote(lambda: 1).remote())
me = psutil.Process()
pids = {p.pid for p in me.children(recursive=True)} | {me.pid}
found = [(c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()) for c in psutil.net_connections(kind="inet")
         if c.status == psutil.CONN_LISTEN and c.pid in pids]
print("LISTEN " + json.dumps(found))
ray.shutdown()
"""


@pytest.mark.slow
def test_embedded_ray_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", LISTENERS], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    line = [x for x in done.stdout.splitlines() if x.startswith("LISTEN ")]
    assert done.returncode == 0 and line, done.stderr[-3000:]
    found = json.loads(line[0][7:])
    assert len(found) >= 3, f"expected Ray's listeners, found {found}"
    open_ = [f for f in found if not (f[0].startswith("127.") or f[0] in ("::1", "localhost")
                                      or f[0].startswith("::ffff:127."))]
    assert not open_, f"embedded Ray listens beyond loopback: {open_}"


def test_cluster_yaml_binds_the_dashboard_locally_and_documents_the_tunnel():
    text = (REPO / "ray_cluster.yaml").read_text()
    commands = [ln for ln in text.splitlines() if "ray start --head" in ln and not ln.lstrip().startswith("#")]
    assert commands and all("--dashboard-host=127.0.0.1" in c for c in commands)
    assert "0.0.0.0" not in "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "ssh -N -L 8265:localhost:8265" in text and "ray dashboard ray_cluster.yaml" in text
