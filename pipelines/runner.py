"""Run a recipe: discover inputs into shards, run the stage graph, write manifest/errors shards.

Layout of ``OUT``::

    OUT/_inputs/shard-00000.parquet    discovered input rows of shard 0 (deterministic)
    OUT/manifest/shard-00000.parquet   good rows
    OUT/errors/shard-00000.parquet     rejected rows: id, input, stage, reason
    OUT/_state/shard-00000.json        written last: the shard is done (input hash + recipe fingerprint)
    OUT/run.json                       recipe, versions, counts, wall time

Why shards: they are the unit of resume. A killed run leaves whole shards (files are written to a
temporary name and renamed) plus state markers; a re-run skips every shard whose marker matches its
input and recipe, and produces the same bytes for the rest. Nothing is silently dropped: every input
row is accounted for as good output rows or an error row, and the runner checks that per shard. The shard
files themselves (cutting, writing, resume checks) are ``shards.py``; this module runs hooks and stages.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import RunContext
from .executors import LocalExecutor, RayExecutor
from .recipe import Recipe, load_recipe
from .shards import InputShard, group_by_shard, is_done, remove_stale, write_input_shards, write_shard


@dataclass
class RunResult:
    out_dir: Path
    shards_total: int = 0
    shards_run: int = 0
    shards_skipped: int = 0
    inputs: int = 0
    rows: int = 0
    errors: int = 0
    hours: float = 0.0
    errors_by_stage: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


def run_recipe(recipe: str | Path | Recipe, overrides: dict[str, Any] | None = None, *, executor: str = "ray",
               address: str | None = None, console: Any = None, fail_after_shards: int | None = None) -> RunResult:
    """Run ``recipe`` (a path, a packaged recipe name or a loaded Recipe) to completion; resumable.

    ``fail_after_shards`` exists for the resume test: it raises after that many shards were written,
    the way a killed worker would leave the run.
    """
    t0 = time.time()
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    out = Path(rec.output)
    for sub in ("_inputs", "manifest", "errors", "_state"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ctx = RunContext(out_dir=out, recipe=rec, seed=rec.seed, console=console)
    if executor == "ray":
        _init_ray(address)
    for hook in rec.prepare:
        _call_hook(hook.uses, ctx, hook.params)

    shards = write_input_shards(ctx.iter_input(), out / "_inputs", rec.shard_size)
    fp = rec.fingerprint()
    res = RunResult(out_dir=out, shards_total=len(shards))
    pending = [s for s in shards if not is_done(out, s, fp)]
    res.shards_skipped = len(shards) - len(pending)
    remove_stale(out, len(shards))
    if pending:
        ex = RayExecutor(rec.stages) if executor == "ray" else LocalExecutor(rec.stages)
        by_idx = {s.index: s for s in pending}
        written = 0
        from tqdm import tqdm

        with tqdm(total=len(pending), desc=f"{rec.name}: shards", unit="shard",
                  disable=not sys.stderr.isatty()) as bar:
            for idx, table in group_by_shard(ex.run([s.path for s in pending]), [s.index for s in pending]):
                write_shard(out, by_idx[idx], table, fp)
                res.shards_run += 1
                written += 1
                bar.update(1)
                if fail_after_shards is not None and written >= fail_after_shards:
                    raise RuntimeError(f"stopped on purpose after {written} shard(s) (fail_after_shards)")
    for hook in rec.finalize:
        _call_hook(hook.uses, ctx, hook.params)
    _tally(out, shards, res)
    res.wall_seconds = round(time.time() - t0, 3)
    res.extras = ctx.extras
    _write_run_json(out, rec, res, executor)
    return res


def _tally(out: Path, shards: list[InputShard], res: RunResult) -> None:
    by_stage: Counter[str] = Counter()
    for s in shards:
        st = json.loads((out / "_state" / f"shard-{s.index:05d}.json").read_text())
        res.inputs += st["inputs"]
        res.rows += st["rows"]
        res.errors += st["errors"]
        res.hours += st["hours"]
        by_stage.update(st["errors_by_stage"])
    res.errors_by_stage = dict(sorted(by_stage.items()))


def _call_hook(target: str, ctx: RunContext, params: dict[str, Any]) -> None:
    if ":" not in target:
        raise ValueError(f"hook {target!r} must be 'package.module:function'")
    mod, fn = target.split(":", 1)
    getattr(importlib.import_module(mod), fn)(ctx, **params)


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr:
        ray.init(address=addr, log_to_driver=True)
    else:  # embedded local Ray: no cluster needed
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="warning")


def versions() -> dict[str, str]:
    """Installed versions for run.json, read from package metadata (importing torch here would cost seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("slmfactory", "ray", "pyarrow", "torch", "torchaudio", "numpy", "soundfile", "soxr", "faiss-cpu",
                 "silero-vad", "pocketsphinx", "polars", "datasets", "transformers"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:  # an optional library that is not installed is just not listed
            continue
    return out


def _write_run_json(out: Path, rec: Recipe, res: RunResult, executor: str) -> None:
    info = {"recipe": rec.raw, "recipe_path": rec.path, "recipe_fingerprint": rec.fingerprint(), "executor": executor,
            "versions": versions(), "counts": {"inputs": res.inputs, "rows": res.rows, "errors": res.errors,
                                               "hours": round(res.hours, 6), "errors_by_stage": res.errors_by_stage},
            "shards": {"total": res.shards_total, "run": res.shards_run, "skipped": res.shards_skipped},
            "wall_seconds": res.wall_seconds, "extras": res.extras}
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    os.replace(tmp, out / "run.json")
