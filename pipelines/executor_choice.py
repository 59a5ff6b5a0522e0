"""``--executor auto``: small inputs run in this process, everything else on Ray.

Why: starting the embedded Ray costs 10-20 s and a screen of its log lines; a first try on a dozen files
finishes sooner in one process, and the rows are the same (the executors run the same stages; only the
scheduling differs). The choice reads no audio and stops counting as soon as the input is not small:
a folder is walked until one file too many, a run folder's size is read from Parquet metadata, a
JSONL/Lhotse file is counted by lines. A cluster (``--address``, ``RAY_ADDRESS``: also what
``ray job submit`` sets), a GPU stage or an actor pool always means Ray.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SMALL_ITEMS = 32  # at most this many input items (and at most one shard of them) ...
SMALL_BYTES = 20_000_000  # ... and this much audio on disk (~10 min of 16-bit WAV, ~20 min of MP3)
SMALL_SECONDS = 600.0  # ... or this much audio in a previous run's manifest


def choose_executor(rec: Any, executor: str, address: str | None) -> tuple[str, str | None]:
    """The executor to use, and a one-line reason when ``auto`` chose it (None when the user chose)."""
    if executor != "auto":
        return executor, None
    if address or os.environ.get("RAY_ADDRESS"):
        return "ray", "executor: ray (a Ray cluster address is set)"
    if any(s.num_gpus or (s.concurrency or 1) > 1 for s in rec.stages):
        return "ray", "executor: ray (a stage asks for GPUs or several actors)"
    limit = min(SMALL_ITEMS, rec.shard_size)
    size = input_size(rec.input, limit)
    if size is None:
        return "ray", f"executor: ray (the input has more than {limit} items or is large; --executor local to debug)"
    n, what = size
    return "local", f"executor: local ({n} input items, {what}: small enough for one process; --executor ray for Ray)"


def input_size(spec: dict[str, Any], limit: int) -> tuple[int, str] | None:
    """``(items, size in words)`` when the input is small, None when it is not (or cannot be told cheaply)."""
    root = spec.get("path") if spec.get("kind") == "manifest" else spec.get("root")
    if not isinstance(root, str) or not os.path.exists(root):
        return None
    if spec.get("kind") == "manifest":
        return _manifest_size(root, limit)
    p = Path(root)
    if p.is_file():
        return _file_size(p, limit)
    return _tree_size(root, limit)


def _tree_size(root: str, limit: int) -> tuple[int, str] | None:
    from ..manifests.discovery import is_audio, walk

    n, total = 0, 0
    for d, names in walk(root):
        for name in names:
            if not is_audio(name):
                continue
            n += 1
            try:
                total += os.stat(os.path.join(d, name)).st_size
            except OSError:
                pass
            if n > limit or total > SMALL_BYTES:
                return None
    return n, f"{total / 1e6:.1f} MB of audio"


def _file_size(path: Path, limit: int) -> tuple[int, str] | None:
    if path.suffix == ".gz" or path.stat().st_size > 10_000_000:
        return None
    n = 0
    with open(path, "rb") as f:
        for line in f:
            n += bool(line.strip())
            if n > limit:
                return None
    return n, f"{n} lines of {path.name}"


def _manifest_size(root: str, limit: int) -> tuple[int, str] | None:
    import pyarrow.parquet as pq

    from ..manifests.run_manifest import manifest_files

    try:
        files = manifest_files(root)
        n = sum(pq.read_metadata(f).num_rows for f in files)
        if n > limit:
            return None
        seconds = sum(x or 0.0 for f in files if "duration" in pq.read_schema(f).names
                      for x in pq.read_table(f, columns=["duration"]).column(0).to_pylist())
    except (OSError, ValueError):
        return None
    return (n, f"{seconds / 60:.1f} min of audio") if seconds <= SMALL_SECONDS else None
