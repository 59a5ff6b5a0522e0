"""Run a recipe: discover inputs into shards, run the stage graph, write manifest/errors shards.

Layout of ``OUT``::

    OUT/_inputs/shard-00000.parquet    discovered input rows of shard 0 (deterministic)
    OUT/manifest/shard-00000.parquet   good rows
    OUT/errors/shard-00000.parquet     rejected rows: id, input, stage, reason
    OUT/_state/shard-00000.json        written last: the shard is done (input hash + recipe fingerprint)
    OUT/run.json                       recipe, versions, counts, per-stage metrics, outputs, wall time
    OUT/logs/ray.log                   Ray's own console output (progress.ray_logs), off the console
    OUT/.lock                          flock held by the running run (pid, host, command inside)
    OUT/.slmfactory.json               which recipe this folder belongs to

Why shards: they are the unit of resume. A killed run leaves whole shards (files are written to a
temporary name and renamed) plus state markers; a re-run skips every shard whose marker matches its
input and recipe, and produces the same bytes for the rest. Nothing is silently dropped: every input
row is accounted for as good output rows or an error row, checked per shard. The shard files (cutting, writing,
resume checks) are ``shards.py``; workers write them (``executors.py``) and this driver only collects each
shard's counts, so its memory does not grow with the corpus. This module runs hooks and stages.

Why a lock and an owner: an output folder belongs to one recipe and one run at a time. A second run into a
busy folder refuses, naming the holder; a folder holding another recipe's output is refused unless
``force`` (which empties it first, so no ``packed/`` or other file of the old recipe stays mixed in).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import RunContext
from .executors import LocalExecutor, RayExecutor
from .progress import RunProgress, ray_logs
from .ray_orphans import clean_orphans, record_session
from .ray_setup import init_ray
from .recipe import HookSpec, Recipe, RecipeError, load_recipe
from .registry import load_code
from .shards import InputShard, is_done, remove_stale, run_fingerprint, write_input_shards

log = logging.getLogger("slmfactory.runner")

_init_ray = init_ray  # the name bench scripts and tests import

OWNER = ".slmfactory.json"


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
    # per stage, over the shards this run computed: rows_in/rows_out (live rows), errors (rows it rejected),
    # busy_s (seconds inside the stage, summed over workers), rows_per_s (rows_in / busy_s)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # every output folder (and file) of the run: name -> path
    rejected_share: float = 0.0  # errors / (rows + errors): the share of output records that were rejected


def run_recipe(recipe: str | Path | Recipe, overrides: dict[str, Any] | None = None, *, executor: str = "ray",
               address: str | None = None, console: Any = None, fail_after_shards: int | None = None,
               force: bool = False, allow_code: list[str] | tuple[str, ...] | None = None) -> RunResult:
    """Run ``recipe`` (a path, a packaged recipe name or a loaded Recipe) to completion; resumable.

    The recipe is checked completely before anything runs (``load_recipe``). ``force``: take over a folder
    that holds another recipe's output (emptied first). ``allow_code``: ``module:Name`` targets the user
    allows besides the registered stages and hooks. ``fail_after_shards`` exists for the resume test: it
    raises after that many shards were written, the way a killed worker would leave the run.
    """
    t0 = time.time()
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides, allow_code=allow_code)
    if executor not in ("ray", "local"):
        raise RecipeError(f"executor {executor!r}: choose ray or local")
    out = Path(rec.output)
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, rec):
        clean_orphans(out)  # Ray processes a killed driver of this folder left behind (before --force empties it)
        _claim(out, rec, force)
        return _run_locked(rec, out, executor, address, console, fail_after_shards, t0)


def _run_locked(rec: Recipe, out: Path, executor: str, address: str | None, console: Any,
                fail_after_shards: int | None, t0: float) -> RunResult:
    for sub in ("_inputs", "manifest", "errors", "_state"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ctx = RunContext(out_dir=out, recipe=rec, seed=rec.seed, console=console)
    res = RunResult(out_dir=out)
    with ray_logs(out / "logs", active=executor == "ray") as term:
        if executor == "ray":
            init_ray(address)
            record_session(out)
        for hook in rec.prepare:
            _call_hook(hook, ctx)
        shards = write_input_shards(ctx.iter_input(), out / "_inputs", rec.shard_size)
        fp = run_fingerprint(rec.fingerprint(), [s.params for s in rec.stages])
        pending = [s for s in shards if not is_done(out, s, fp)]
        res.shards_total, res.shards_skipped = len(shards), len(shards) - len(pending)
        remove_stale(out, len(shards))
        if pending:
            _run_shards(rec, out, executor, pending, fp, res, _progress_console(console, term), fail_after_shards)
        for hook in rec.finalize:
            _call_hook(hook, ctx)
    _tally(out, shards, res)
    res.wall_seconds = round(time.time() - t0, 3)
    res.extras = ctx.extras
    info = _write_run_json(out, rec, res, executor, fp)
    _write_card(out, info)
    res.outputs = outputs(out)
    return res


def _run_shards(rec: Recipe, out: Path, executor: str, pending: list[InputShard], fp: str, res: RunResult,
                console: Any, fail_after_shards: int | None) -> None:
    """Workers (or this process, for ``local``) compute and write the shards; here only their counts arrive."""
    ex = RayExecutor(rec.stages) if executor == "ray" else LocalExecutor(rec.stages)
    left = {s.index for s in pending}
    totals: dict[str, list[float]] = {s.name: [0, 0, 0, 0.0] for s in rec.stages}
    res.stages = stage_metrics(totals)
    # closing(): a driver that stops (fail_after_shards, Ctrl-C) shuts Ray's execution down before the lock goes
    with RunProgress(console, rec.name, [s.name for s in rec.stages], len(pending), res.shards_skipped) as bar, \
            closing(ex.run(pending, out, fp)) as results:
        for result in results:
            left.discard(result["index"])
            res.shards_run += 1
            for stage, m in result["stages"].items():
                totals[stage] = [a + b for a, b in zip(totals.setdefault(stage, [0, 0, 0, 0.0]), m)]
            res.stages = stage_metrics(totals)
            bar.update(result)
            if fail_after_shards is not None and res.shards_run >= fail_after_shards:
                raise RuntimeError(f"stopped on purpose after {res.shards_run} shard(s) (fail_after_shards)")
    if left:
        raise RuntimeError(f"shards {sorted(left)} were never written; the executor lost them (re-run to resume)")


def _progress_console(console: Any, term: Any) -> Any:
    """The CLI's console; for library callers, the terminal's stderr when it is one (else no display)."""
    if console is not None:
        return console
    if getattr(term, "isatty", lambda: False)():
        from rich.console import Console

        return Console(file=term)
    return None


class OutputLock:
    """An exclusive ``flock`` on ``OUT/.lock`` for the whole run; the file says who holds it. The kernel drops
    the lock when the holder dies (kill -9 included), so a crashed run never blocks the next one."""

    def __init__(self, out: Path, rec: Recipe):
        self.path, self.rec, self.fd = out / ".lock", rec, -1

    def __enter__(self) -> "OutputLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(self.fd)
            raise OutputBusy(f"{self.path.parent} is in use by another run ({holder}); wait for it to finish, or "
                             f"give this run another output folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "recipe": self.rec.name,
                "command": " ".join(sys.argv)[:500], "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(info).encode(), 0)
        return self

    def __exit__(self, *exc: Any) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing releases the flock


class OutputBusy(RecipeError):
    """Another run holds the output folder."""


def _claim(out: Path, rec: Recipe, force: bool) -> None:
    """Refuse a folder that holds another recipe's output unless ``force``; with ``force``, empty it first."""
    owner = None
    for name in (OWNER, "run.json"):  # run.json: a folder written before owner markers existed
        try:
            owner = json.loads((out / name).read_text())["recipe"]
            owner = owner.get("name") if isinstance(owner, dict) else owner
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if owner:
            break
    if owner and owner != rec.name:
        if not force:
            raise RecipeError(f"{out} holds the output of recipe {owner!r}, not {rec.name!r}; choose another output "
                              f"folder, or pass --force to empty it and run {rec.name!r} there")
        for p in out.iterdir():  # nothing of the other recipe (packed/, hf/, kmeans/...) may stay mixed in
            if p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    tmp = out / f".{OWNER}.tmp"
    tmp.write_text(json.dumps({"recipe": rec.name, "recipe_path": rec.path}))
    os.replace(tmp, out / OWNER)


def _tally(out: Path, shards: list[InputShard], res: RunResult) -> None:
    """Counts over every shard (run now or skipped), from the markers the writers left."""
    by_stage: Counter[str] = Counter()
    for s in shards:
        st = json.loads((out / "_state" / f"shard-{s.index:05d}.json").read_text())
        res.inputs += st["inputs"]
        res.rows += st["rows"]
        res.errors += st["errors"]
        res.hours += st["hours"]
        by_stage.update(st["errors_by_stage"])
    res.errors_by_stage = dict(sorted(by_stage.items()))
    res.rejected_share = round(res.errors / (res.rows + res.errors), 6) if res.rows + res.errors else 0.0


def stage_metrics(totals: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {name: {"rows_in": int(rin), "rows_out": int(rout), "errors": int(err), "busy_s": round(busy, 3),
                   "rows_per_s": round(rin / busy, 2) if busy > 0 else 0.0}
            for name, (rin, rout, err, busy) in totals.items()}


def outputs(out: Path) -> dict[str, str]:
    """Every output folder of the run (``manifest``, ``errors``, ``packed``, ``kmeans``, ``hf``, ``logs``...) and the
    top-level files a reader opens (``run.json``, ``README.md``); not the resume bookkeeping (``_inputs``, ``_state``)."""
    found = {p.name: str(p) for p in sorted(out.iterdir()) if p.is_dir() and p.name[0] not in "._"}
    found.update({p.name: str(p) for p in (out / "run.json", out / "README.md") if p.is_file()})
    return found


def _write_card(out: Path, info: dict[str, Any]) -> None:
    """The run folder's README (``load_dataset(OUT)``). A card that cannot be written must not fail a finished
    run: the data is on disk; say so and go on."""
    from ..manifests.card import write_run_card

    try:
        write_run_card(out, info)
    except Exception as e:  # noqa: BLE001 - the card is documentation of the data, not the data
        log.warning("%s: could not write the dataset card README.md (%s: %s); the data is complete", out, type(e).__name__, e)


def _call_hook(hook: HookSpec, ctx: RunContext) -> None:
    """``hook.uses`` was checked by the recipe loader (registry.HOOKS, or allowed by the user)."""
    load_code(hook.uses)(ctx, **hook.params)


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


def _write_run_json(out: Path, rec: Recipe, res: RunResult, executor: str, fp: str) -> dict[str, Any]:
    info = {"recipe": {"name": rec.name, **rec.raw}, "recipe_path": rec.path, "recipe_fingerprint": fp,
            "executor": executor,
            "versions": versions(), "counts": {"inputs": res.inputs, "rows": res.rows, "errors": res.errors,
                                               "hours": round(res.hours, 6), "errors_by_stage": res.errors_by_stage},
            "shards": {"total": res.shards_total, "run": res.shards_run, "skipped": res.shards_skipped},
            "wall_seconds": res.wall_seconds, "extras": res.extras, "stages": res.stages,
            "rejected_share": res.rejected_share, "outputs": {**outputs(out), "run.json": str(out / "run.json")}}
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    os.replace(tmp, out / "run.json")
    return info
