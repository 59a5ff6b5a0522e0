"""Input and output shards on disk: cut discovery into input shards, write each finished shard, resume checks.

Why apart from the runner: this is the resume contract (atomic files, a state marker written last, the
digest and recipe fingerprint that decide whether a shard is redone), and it is independent of how stages
run. Every input row must come back as a good row or an error row; ``write_shard`` checks that per shard.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
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
    first: dict[str, tuple[int, str]] = {}  # id -> (input number, where) of its first live row
    for row in rows:
        row = dict(row)
        row["_seq"] = seq
        row["_shard"] = len(shards)
        row.setdefault("_input", row.get("audio_path") or row.get("id"))
        rid = row.get("id")
        if rid is not None and not row.get(ERROR_COLUMN):
            if rid in first:  # a second row with one id would be two manifest rows with one id (exported twice)
                n, where = first[rid]
                row[ERROR_COLUMN] = (f"duplicate id {rid!r}: the same id as input #{n + 1} ({where}); make ids "
                                     f"unique (each id names one segment)")
                row[ERROR_STAGE_COLUMN] = "input"
            else:
                first[rid] = (seq, str(row.get("_input")))
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
    if not (meta_path.exists() and meta_path.read_text() == digest and _rows_in(path) == table.num_rows):
        _atomic_parquet(table, path)
        meta_path.write_text(digest)
    return InputShard(index, str(path), digest, table.num_rows)


def _rows_in(path: Path) -> int | None:
    """Rows of a Parquet file, or None when it is missing or unreadable (truncated, not Parquet)."""
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return None


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
def write_shard(out: Path, shard: InputShard, table: pa.Table, fp: str) -> dict[str, Any]:
    """Write one finished shard where it was computed (a worker, or this process for the local executor): manifest
    and errors files first (temporary name + rename), the marker last. Returns the marker's content: the counts
    the driver collects instead of rows. ``writer`` (pid, host) says which process wrote it."""
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
    (out / "_state" / f"shard-{shard.index:05d}.json").unlink(missing_ok=True)  # a half-rewritten shard: not done
    if good:
        _atomic_parquet(table_from_rows([{k: v for k, v in r.items() if k not in drop} for r in good]),
                        out / "manifest" / name)
    elif (out / "manifest" / name).exists():
        (out / "manifest" / name).unlink()
    err_rows = [{"id": r.get("id"), "input": r.get("_input") or r.get("audio_path"), "stage": r.get(ERROR_STAGE_COLUMN),
                 "reason": r.get(ERROR_COLUMN), "source": r.get("source"), "meta": r.get("meta")} for r in bad]
    _atomic_parquet(pa.Table.from_pylist(err_rows, schema=ERROR_SCHEMA), out / "errors" / name)
    state = {"input_digest": shard.digest, "recipe": fp, "inputs": shard.rows, "rows": len(good), "errors": len(bad),
             "files": {f"{sub}/{name}": file_sha1(out / sub / name) for sub in ("manifest", "errors")
                       if (out / sub / name).exists()},
             "hours": sum(float(r.get("duration") or 0) for r in good) / 3600.0,
             "errors_by_stage": dict(Counter(str(r.get(ERROR_STAGE_COLUMN)) for r in bad)),
             "writer": {"pid": os.getpid(), "host": socket.gethostname()}}
    tmp = out / "_state" / f".{name}.{os.getpid()}.json.tmp"
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, out / "_state" / f"shard-{shard.index:05d}.json")
    return state


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: a retried task never shares one
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_done(out: Path, shard: InputShard, fp: str) -> bool:
    """A shard is skipped only if its marker matches its input and fingerprint AND its files are there, whole:
    each recorded manifest/errors file exists with the recorded digest and row count (a deleted or truncated
    shard is recomputed, never trusted)."""
    p = out / "_state" / f"shard-{shard.index:05d}.json"
    try:
        st = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if st.get("input_digest") != shard.digest or st.get("recipe") != fp or "files" not in st:
        return False
    want = {f"manifest/{p.name[:-5]}.parquet": st.get("rows"), f"errors/{p.name[:-5]}.parquet": st.get("errors")}
    for rel, rows in want.items():
        f = out / rel
        if rel not in st["files"]:
            if rows or f.exists():  # rows recorded but no file, or a file the marker does not know
                return False
            continue
        if _rows_in(f) != rows or file_sha1(f) != st["files"][rel]:
            return False
    return True


# --- what a shard depends on besides its input rows -------------------------------------------------
BIG_FILE = 64 << 20  # larger files are identified by (absolute path, size, mtime), not by their bytes
OUTPUT_PARAMS = {"audio_dir", "dest", "out_subdir"}  # folders stages/hooks write into: not inputs of a shard


def run_fingerprint(recipe_fp: str, params: list[dict[str, Any]]) -> str:
    """The recipe fingerprint plus a digest of every artefact the stage parameters name (k-means files,
    text tokenizers, model files and folders): a new codebook or model redoes every shard. Files up to
    ``BIG_FILE`` are hashed by content; bigger ones by absolute path, size and mtime."""
    h = hashlib.sha1(recipe_fp.encode())
    for p in params:
        for key, value in sorted(_strings(p, "")):
            if key in OUTPUT_PARAMS or "://" in value:
                continue
            for f in _artefact_files(value):
                h.update(f"{key}={f}:{_file_id(f)}".encode())
    return h.hexdigest()[:16]


def _strings(obj: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, key)
    elif isinstance(obj, str) and obj:
        yield key, obj


def _artefact_files(value: str) -> list[str]:
    """Files a parameter names: the file, the files under a folder, or ``PREFIX.*`` (k-means ``PREFIX.npy``)."""
    p = Path(value).expanduser()
    try:
        if p.is_file():
            return [str(p.resolve())]
        if "/" not in value:  # a bare word (``spectral``, ``tokenize``) is a name, not a folder or a prefix
            return []
        if p.is_dir():
            return sorted(str(f.resolve()) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        return sorted(str(f.resolve()) for f in p.parent.glob(p.name + ".*") if f.is_file())
    except OSError:
        return []


def _file_id(path: str) -> str:
    st = os.stat(path)
    if st.st_size > BIG_FILE:
        return f"size={st.st_size}:mtime={st.st_mtime_ns}"
    return file_sha1(Path(path))


def remove_stale(out: Path, n: int) -> None:
    """Shards beyond the current input count (the corpus shrank) must not linger in the outputs, nor temporary
    files of a killed run (the caller holds the folder's lock: no other run is writing)."""
    for sub in ("_inputs", "manifest", "errors", "_state"):
        for p in (out / sub).glob(".*.tmp"):
            p.unlink(missing_ok=True)
    for sub, pattern in (("manifest", "shard-*.parquet"), ("errors", "shard-*.parquet"), ("_state", "shard-*.json")):
        for p in sorted((out / sub).glob(pattern)):
            if int(p.name.split("-")[1].split(".")[0]) >= n:
                p.unlink()
