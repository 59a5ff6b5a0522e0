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
row is accounted for as good output rows or an error row, and the runner checks that per shard.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..manifests.schema import (BASE_COLUMNS, ERROR_COLUMN, ERROR_SCHEMA, ERROR_STAGE_COLUMN,
                                         TRANSIENT_COLUMNS, table_from_rows)
from .context import RunContext
from .executors import LocalExecutor, RayExecutor
from .recipe import Recipe, load_recipe

HIDDEN = {"_seq": pa.int64(), "_shard": pa.int32(), "_input": pa.string(),
          "_spans": pa.list_(pa.list_(pa.float64()))}
ERR_COLS = (ERROR_COLUMN, ERROR_STAGE_COLUMN)


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
    pending = [s for s in shards if not _is_done(out, s, fp)]
    res.shards_skipped = len(shards) - len(pending)
    _remove_stale(out, len(shards))
    if pending:
        ex = RayExecutor(rec.stages) if executor == "ray" else LocalExecutor(rec.stages)
        by_idx = {s.index: s for s in pending}
        written = 0
        from tqdm import tqdm

        with tqdm(total=len(pending), desc=f"{rec.name}: shards", unit="shard",
                  disable=not sys.stderr.isatty()) as bar:
            for idx, table in _group_by_shard(ex.run([s.path for s in pending]), [s.index for s in pending]):
                _write_shard(out, by_idx[idx], table, fp)
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


# --- inputs ----------------------------------------------------------------------------------------
@dataclass
class InputShard:
    index: int
    path: str
    digest: str
    rows: int


def write_input_shards(rows: Iterable[dict[str, Any]], folder: Path, shard_size: int) -> list[InputShard]:
    """Cut the (lazy) discovery stream into Parquet shards; rewrite a shard only if its content changed."""
    shards: list[InputShard] = []
    buf: list[dict[str, Any]] = []
    seq = 0
    for row in rows:
        row = dict(row)
        row["_seq"] = seq
        row["_shard"] = len(shards)
        row.setdefault("_input", row.get("audio_path") or row.get("id"))
        buf.append(row)
        seq += 1
        if len(buf) >= shard_size:
            shards.append(_flush_input(buf, folder, len(shards)))
            buf = []
    if buf:
        shards.append(_flush_input(buf, folder, len(shards)))
    for stale in sorted(folder.glob("shard-*.parquet"))[len(shards):]:
        stale.unlink()
    return shards


def _flush_input(buf: list[dict[str, Any]], folder: Path, index: int) -> InputShard:
    for r in buf:
        for c in BASE_COLUMNS:
            r.setdefault(c, None)
        r.setdefault(ERROR_COLUMN, None)
        r.setdefault(ERROR_STAGE_COLUMN, None)
        r.setdefault("_spans", None)
    table = _typed(table_from_rows(buf))
    digest = hashlib.sha1(json.dumps(table.to_pylist(), sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = folder / f"shard-{index:05d}.parquet"
    meta_path = folder / f"shard-{index:05d}.sha1"
    if not (path.exists() and meta_path.exists() and meta_path.read_text() == digest):
        _atomic_parquet(table, path)
        meta_path.write_text(digest)
    return InputShard(index, str(path), digest, table.num_rows)


def _typed(table: pa.Table) -> pa.Table:
    """Give hidden and all-null columns fixed types so every input shard has the same schema."""
    cols, fields = [], []
    for name in table.column_names:
        col = table.column(name)
        typ = HIDDEN.get(name) or (pa.string() if pa.types.is_null(col.type) else col.type)
        cols.append(col.cast(typ))
        fields.append(pa.field(name, typ))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


# --- outputs ---------------------------------------------------------------------------------------
def _group_by_shard(batches: Iterator[pa.Table], order: list[int]) -> Iterator[tuple[int, pa.Table]]:
    """Rows arrive in input order; a shard is complete when a row of a later shard shows up."""
    current: int | None = None
    parts: list[pa.Table] = []
    seen: list[int] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        shard_col = batch.column("_shard").to_pylist()
        start = 0
        for i in range(1, len(shard_col) + 1):
            if i == len(shard_col) or shard_col[i] != shard_col[start]:
                sid = shard_col[start]
                if sid in seen:
                    raise RuntimeError(f"rows of shard {sid} arrived after the shard was closed; a stage "
                                       f"reordered rows across inputs (outputs must follow input order)")
                if current is not None and sid != current:
                    yield current, pa.concat_tables(parts, promote_options="permissive")
                    seen.append(current)
                    parts = []
                current = sid
                parts.append(batch.slice(start, i - start))
                start = i
    if current is not None:
        yield current, pa.concat_tables(parts, promote_options="permissive")
        seen.append(current)
    missing = [s for s in order if s not in seen]
    if missing:
        raise RuntimeError(f"shards {missing} produced no rows at all; a stage dropped rows (it must reject them)")


def _write_shard(out: Path, shard: InputShard, table: pa.Table, fp: str) -> None:
    table = table.sort_by([("_seq", "ascending")]) if "_seq" in table.column_names else table
    rows = table.to_pylist()
    good = [r for r in rows if not r.get(ERROR_COLUMN)]
    bad = [r for r in rows if r.get(ERROR_COLUMN)]
    accounted = {r["_seq"] for r in rows}
    inputs = pq.read_table(shard.path, columns=["_seq", "_input", "id", "source", "meta"]).to_pylist()
    for lost in (r for r in inputs if r["_seq"] not in accounted):  # defensive: a stage lost a row
        bad.append({**lost, ERROR_COLUMN: "row disappeared inside the pipeline (a stage returned no output)",
                    ERROR_STAGE_COLUMN: "runner"})
    drop = set(HIDDEN) | set(ERR_COLS) | set(TRANSIENT_COLUMNS)
    name = f"shard-{shard.index:05d}.parquet"
    if good:
        _atomic_parquet(table_from_rows([{k: v for k, v in r.items() if k not in drop} for r in good]),
                        out / "manifest" / name)
    elif (out / "manifest" / name).exists():
        (out / "manifest" / name).unlink()
    err_rows = [{"id": r.get("id"), "input": r.get("_input") or r.get("audio_path"), "stage": r.get(ERROR_STAGE_COLUMN),
                 "reason": r.get(ERROR_COLUMN), "source": r.get("source"), "meta": r.get("meta")} for r in bad]
    _atomic_parquet(pa.Table.from_pylist(err_rows, schema=ERROR_SCHEMA), out / "errors" / name)
    state = {"input_digest": shard.digest, "recipe": fp, "inputs": shard.rows, "rows": len(good), "errors": len(bad),
             "hours": sum(float(r.get("duration") or 0) for r in good) / 3600.0,
             "errors_by_stage": dict(Counter(str(r.get(ERROR_STAGE_COLUMN)) for r in bad))}
    tmp = out / "_state" / f".{name}.json.tmp"
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, out / "_state" / f"shard-{shard.index:05d}.json")


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _is_done(out: Path, shard: InputShard, fp: str) -> bool:
    p = out / "_state" / f"shard-{shard.index:05d}.json"
    if not p.exists():
        return False
    try:
        st = json.loads(p.read_text())
    except json.JSONDecodeError:
        return False
    return st.get("input_digest") == shard.digest and st.get("recipe") == fp


def _remove_stale(out: Path, n: int) -> None:
    """Shards beyond the current input count (the corpus shrank) must not linger in the outputs."""
    for sub, pattern in (("manifest", "shard-*.parquet"), ("errors", "shard-*.parquet"), ("_state", "shard-*.json")):
        for p in sorted((out / sub).glob(pattern)):
            if int(p.name.split("-")[1].split(".")[0]) >= n:
                p.unlink()


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
