"""Resume and determinism: a killed run, re-run, finishes without redoing finished shards and gives
byte-identical outputs to a clean run. Audio: espeak-ng podcast-shaped corpus (generated)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmfactory.pipelines.runner import run_recipe


def _digest(folder: Path) -> dict[str, str]:
    return {f"{sub}/{p.name}": hashlib.sha1(p.read_bytes()).hexdigest()
            for sub in ("manifest", "errors") for p in sorted((folder / sub).glob("*.parquet"))}


@pytest.fixture(scope="module")
def clean_run(corpora, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run_recipe("ingest", {"kind": "folder", "root": str(corpora["bad"]), "out": str(out), "shard_size": 2},
               executor="local")
    return out


def test_same_inputs_same_outputs(corpora, clean_run, tmp_path, ray_local):
    """The Ray executor and a second clean run produce the same bytes as the local executor; Ray's worker
    processes wrote the shards (the driver only collected counts), and run.json has per-stage metrics."""
    out = tmp_path / "again"
    res = run_recipe("ingest", {"kind": "folder", "root": str(corpora["bad"]), "out": str(out), "shard_size": 2})
    assert _digest(out) == _digest(clean_run)
    writers = {json.loads(p.read_text())["writer"]["pid"] for p in (out / "_state").glob("shard-*.json")}
    assert writers and os.getpid() not in writers, "the driver wrote shards itself"
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert stages == res.stages and list(res.stages)[:2] == ["decode", "vad_segment"]  # recipe order
    before = sum(n for stage, n in res.errors_by_stage.items() if stage not in stages)  # rejected by discovery
    decode = stages["decode"]
    assert decode["rows_in"] == res.inputs - before and decode["busy_s"] > 0 and decode["rows_per_s"] > 0
    assert decode["errors"] == res.errors_by_stage.get("decode", 0) > 0
    assert sum(s["errors"] for s in stages.values()) + before == res.errors
    assert 0 < res.rejected_share < 1 and {"manifest", "errors", "run.json"} <= set(res.outputs)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_crash_then_rerun_skips_finished_shards(corpora, clean_run, tmp_path, request, executor):
    """The driver dies after two shards; with Ray, workers may still finish shards in flight (they write them
    themselves). The re-run redoes none of the finished shards and gives the clean run's bytes."""
    if executor == "ray":
        request.getfixturevalue("ray_local")
    out = tmp_path / "crashed"
    over = {"kind": "folder", "root": str(corpora["bad"]), "out": str(out), "shard_size": 2}
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        run_recipe("ingest", over, executor=executor, fail_after_shards=2)
    done = sorted((out / "_state").glob("shard-*.json"))
    assert len(done) == 2 if executor == "local" else len(done) >= 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}
    res = run_recipe("ingest", over, executor=executor)
    assert res.shards_skipped >= len(done) and res.shards_run == res.shards_total - res.shards_skipped
    assert (res.shards_skipped == 2) if executor == "local" else res.shards_run >= 1
    assert {p.name: p.stat().st_mtime_ns for p in done} == mtimes, "finished shards were redone"
    assert _digest(out) == _digest(clean_run)


def test_sigkill_mid_run_then_rerun(corpora, clean_run, tmp_path):
    """A real kill -9 of the CLI while it works; the re-run completes and matches the clean run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "slmfactory.pipelines.cli", "ingest", "folder", str(corpora["bad"]), "-o", str(out),
           "--shard-size", "1", "--executor", "local", "--max-rejected", "1"]  # the bad corpus: most rows rejected
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "_state").glob("shard-*.json"))) < 2:
        time.sleep(0.02)
        if proc.poll() is not None:
            break
    killed_mid_way = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list((out / "_state").glob("shard-*.json")))
    assert finished >= 1
    subprocess.run(cmd, check=True, capture_output=True)
    run = json.loads((out / "run.json").read_text())
    if killed_mid_way:
        assert run["shards"]["skipped"] >= finished
        assert run["shards"]["run"] == run["shards"]["total"] - run["shards"]["skipped"]
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"
    # shard size differs from the clean run, so compare rows, not bytes
    import polars as pl

    a = pl.read_parquet(str(out / "manifest" / "*.parquet")).sort("id")
    b = pl.read_parquet(str(clean_run / "manifest" / "*.parquet")).sort("id")
    assert a.equals(b)


def test_changed_input_redoes_only_that_shard(corpora, tmp_path):
    import shutil

    root = tmp_path / "corpus"
    shutil.copytree(corpora["folder"], root)
    over = {"kind": "folder", "root": str(root), "out": str(tmp_path / "o"), "shard_size": 2}
    first = run_recipe("ingest", over, executor="local")
    txt = sorted(root.rglob("*.txt"))[-1]
    txt.write_text("a changed transcript\n")
    second = run_recipe("ingest", over, executor="local")
    assert first.shards_total == second.shards_total == 2
    assert second.shards_run == 1 and second.shards_skipped == 1


def test_moving_the_corpus_keeps_ids(corpora, tmp_path):
    """Ids come from the corpus-relative key, so the same corpus elsewhere gives the same ids (and
    everything seeded by id - voices, interleaving - stays the same)."""
    import shutil

    import polars as pl

    ids = []
    for where in ("a", "b/deeper"):
        root = tmp_path / where / "corpus"
        shutil.copytree(corpora["podcasts"], root)
        out = tmp_path / where / "out"
        run_recipe("ingest", {"kind": "podcasts", "root": str(root), "out": str(out), "max_seconds": 8.0},
                   executor="local")
        ids.append(sorted(pl.read_parquet(str(out / "manifest" / "*.parquet"))["id"].to_list()))
    assert ids[0] == ids[1] and len(ids[0]) > 4
