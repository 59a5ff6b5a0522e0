"""Input and output shards on disk: cut discovery into input shards, write each finished shard, resume checks.

Why apart from the runner: this is the resume contract (atomic files, a state marker written last, the
digest and recipe fingerprint that decide whether a shard is redone), and it is independent of how stages
run. Every input row must come back as a good row or an error row; ``write_shard`` checks that per shard.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..manifests.schema import (BASE_COLUMNS, ERROR_COLUMN, ERROR_SCHEMA, ERROR_STAGE_COLUMN, TRANSIENT_COLUMNS,
                                table_from_rows)

HIDDEN = {"_seq": pa.int64(), "_shard": pa.int32(), "_input": pa.string(),
          "_spans": pa.list_(pa.list_(pa.float64()))}
ERR_COLS = (ERROR_COLUMN, ERROR_STAGE_COLUMN)


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
def group_by_shard(batches: Iterator[pa.Table], order: list[int]) -> Iterator[tuple[int, pa.Table]]:
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


def write_shard(out: Path, shard: InputShard, table: pa.Table, fp: str) -> None:
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


def is_done(out: Path, shard: InputShard, fp: str) -> bool:
    p = out / "_state" / f"shard-{shard.index:05d}.json"
    if not p.exists():
        return False
    try:
        st = json.loads(p.read_text())
    except json.JSONDecodeError:
        return False
    return st.get("input_digest") == shard.digest and st.get("recipe") == fp


def remove_stale(out: Path, n: int) -> None:
    """Shards beyond the current input count (the corpus shrank) must not linger in the outputs."""
    for sub, pattern in (("manifest", "shard-*.parquet"), ("errors", "shard-*.parquet"), ("_state", "shard-*.json")):
        for p in sorted((out / sub).glob(pattern)):
            if int(p.name.split("-")[1].split(".")[0]) >= n:
                p.unlink()
