"""Shards are written where they are computed, with the same bytes however the stages are split into Ray steps;
the progress display names our stages; Ray's console output goes to OUT/logs. No Ray and no audio here: the
stages are tiny ones defined below (one expands rows and rejects one, one writes its batch size into the rows,
so any difference in batching would show in the bytes); the Ray path is run by test_resume and test_executors."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from slmfactory.pipelines import executors
from slmfactory.pipelines.executors import LocalExecutor, ShardStep
from slmfactory.pipelines.progress import RunProgress, ray_logs
from slmfactory.pipelines.recipe import StageSpec
from slmfactory.pipelines.shards import remove_stale, write_input_shards
from slmfactory.stages.base import Stage, reject


class Expand(Stage):
    """Two rows for every third input, one rejected input."""

    name = "expand"

    def process(self, rows):
        out = []
        for r in rows:
            if r["id"] == "u007":
                out.append(reject(r, self.name, "u007: rejected on purpose"))
            else:
                out.extend([r, {**r, "id": r["id"] + "-b"}] if int(r["id"][1:]) % 3 == 0 else [r])
        return out


class BatchTag(Stage):
    """Writes the size of the batch it was given into every row (batch-dependent output, on purpose)."""

    name = "batchtag"

    def process(self, rows):
        return [{**r, "text": f"batch of {len(rows)}"} for r in rows]


SPECS = [StageSpec("expand", f"{__name__}:Expand", batch_size=3, allowed=True),
         StageSpec("batchtag", f"{__name__}:BatchTag", batch_size=5, allowed=True)]


def _shards(tmp_path: Path):
    rows = [{"id": f"u{i:03d}", "source": "t", "audio_path": f"/nowhere/{i}.wav", "text": ""} for i in range(45)]
    (tmp_path / "_inputs").mkdir()
    return write_input_shards(iter(rows), tmp_path / "_inputs", 20)


def _out(folder: Path) -> Path:
    for sub in ("manifest", "errors", "_state"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def _bytes(folder: Path) -> dict[str, str]:
    return {f"{sub}/{p.name}": hashlib.sha1(p.read_bytes()).hexdigest()
            for sub in ("manifest", "errors") for p in sorted((folder / sub).glob("*.parquet"))}


def _spec_json(specs):
    return json.dumps([s.__dict__ for s in specs], sort_keys=True, default=str)


def test_split_steps_write_the_same_bytes_as_one_process(tmp_path, monkeypatch):
    """The Ray graph's steps (stage 1 -> Arrow IPC -> stage 2, which writes) against the local executor: same
    bytes, shards written by the process that ran the last step, counts and per-stage metrics returned."""
    monkeypatch.setattr(executors, "_set_threads", lambda n: None)  # a worker's torch threads: not this process's
    shards = _shards(tmp_path)
    local = _out(tmp_path / "local")
    results = list(LocalExecutor(SPECS).run(shards, local, "fp"))
    split = _out(tmp_path / "split")
    batch = pa.table({"index": [s.index for s in shards], "path": [s.path for s in shards],
                      "digest": [s.digest for s in shards], "rows": [s.rows for s in shards]})
    first = ShardStep(_spec_json(SPECS[:1]), first=True, final=False, out=str(split), fp="fp")
    last = ShardStep(_spec_json(SPECS[1:]), first=False, final=True, out=str(split), fp="fp")
    handed = pa.concat_tables([first(batch.slice(i, 1)) for i in range(batch.num_rows)])
    assert handed.column("table").type == pa.large_binary()
    split_results = [json.loads(r) for i in range(handed.num_rows) for r in
                     last(handed.slice(i, 1)).column("result").to_pylist()]
    assert _bytes(split) == _bytes(local) and len(_bytes(local)) == 2 * len(shards)
    counts = [{k: v[:3] for k, v in r["stages"].items()} for r in results]  # busy seconds differ, counts not
    assert [{k: v[:3] for k, v in r["stages"].items()} for r in split_results] == counts
    marker = json.loads((split / "_state" / "shard-00000.json").read_text())
    assert marker["writer"]["pid"] == os.getpid() and (marker["rows"], marker["errors"]) == (results[0]["rows"],
                                                                                             results[0]["errors"])
    expand = [sum(r["stages"]["expand"][i] for r in results) for i in range(3)]
    assert expand == [45, 44 + 15, 1]  # rows in, rows out (every third doubled), rejected
    texts = set(pq.read_table(local / "manifest").column("text").to_pylist())
    assert "batch of 5" in texts and len(texts) >= 2  # the batching the bytes depend on really varied


def test_a_killed_writer_leaves_only_temporary_files_that_the_next_run_removes(tmp_path):
    out = _out(tmp_path / "o")
    (out / "manifest" / ".shard-00000.parquet.999.tmp").write_bytes(b"half")
    (out / "_state" / ".shard-00000.parquet.999.json.tmp").write_text("{")
    remove_stale(out, 1)
    assert not list(out.rglob(".*.tmp"))


def test_progress_outside_a_terminal_is_a_few_lines_named_after_our_stages():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    with RunProgress(console, "units", ["decode", "vad_segment", "tokenize"], total=40) as bar:
        for i in range(40):
            bar.update({"rows": 3, "errors": i % 2, "stages": {"decode": [1, 1, 0, 0.01], "vad_segment": [1, 3, 0, 0.02],
                                                              "tokenize": [3, 3, i % 2, 0.5]}})
    lines = buf.getvalue().splitlines()
    assert 3 <= len(lines) <= 6, lines
    assert lines[-1].startswith("units: 40/40 shards · 120 rows · 20 errors")
    assert "tokenize 120 rows" in lines[-1] and "20 err" in lines[-1] and "MapBatches" not in buf.getvalue()


def test_ray_output_goes_to_the_log_file_and_the_console_comes_back(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("SLMFACTORY_VERBOSE", raising=False)
    with ray_logs(tmp_path / "logs") as term:
        os.write(2, b"[E core_worker.cc:2465] noise from C++\n")
        term.write("for the user\n")
        term.flush()
    os.write(2, b"after\n")
    said = capfd.readouterr().err
    assert "core_worker" not in said and "for the user" in said and "after" in said
    assert "core_worker.cc:2465" in (tmp_path / "logs" / "ray.log").read_text()
    monkeypatch.setenv("SLMFACTORY_VERBOSE", "1")
    with ray_logs(tmp_path / "logs2"):
        os.write(2, b"verbose: shown\n")
    assert "verbose: shown" in capfd.readouterr().err and not (tmp_path / "logs2").exists()
