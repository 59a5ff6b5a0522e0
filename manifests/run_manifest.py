"""An earlier run's manifest: its Parquet shards, its rows, and the ``manifest`` corpus kind that reads them.

Why here, at the bottom layer: the ``manifest`` input kind (a recipe that continues from ``OUT`` of an
earlier run), ``slmfactory export`` and ``slmfactory inspect`` all read a manifest the same way: a run
folder (its ``manifest/``), a folder of shards or one Parquet file, a batch at a time.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from .corpus import Corpus


def manifest_files(path: str | os.PathLike) -> list[str]:
    """The Parquet shards of a run folder (its ``manifest/``), a folder of shards, or one Parquet file."""
    p = Path(path)
    if (p / "manifest").is_dir():
        p = p / "manifest"
    if p.is_file():
        return [str(p)]
    files = sorted(glob.glob(str(p / "*.parquet"))) if p.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{path}: no Parquet manifest found (expected a run folder with manifest/, a "
                                f"folder of *.parquet shards or a .parquet file); run a pipeline first")
    return files


def is_run_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is the output folder of an earlier run (``manifest/`` + ``run.json``).

    Why: any run folder is a valid corpus. ``corpus=OUT`` of a recipe whose input kind is a corpus layout
    is read as this ``manifest`` kind instead (``pipelines/recipe.py``), so runs chain without
    ``kind=manifest input.path=OUT``.
    """
    p = Path(path)
    return p.is_dir() and (p / "manifest").is_dir() and (p / "run.json").is_file()


def iter_rows(files: list[str], columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of the shards in order, a batch at a time (never the whole manifest in memory)."""
    for f in files:
        pf = pq.ParquetFile(f)
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        for rb in pf.iter_batches(batch_size=512, columns=cols):
            yield from rb.to_pylist()


class PreviousRun(Corpus):
    """The rows of an earlier run (its OUT folder, OUT/manifest or one Parquet shard), as they are.

    Layout: ``OUT/manifest/shard-*.parquet`` as any pipeline writes it; the recipe names it with
    ``input: {kind: manifest, path: OUT}``. Rows keep every column the earlier run wrote (ids, text,
    units, ...), so a recipe can continue where another one stopped without re-reading the corpus.
    """

    name = "manifest"
    root_key = "path"

    def discover(self, root: str, **_: Any) -> Iterator[dict[str, Any]]:
        yield from iter_rows(manifest_files(root))
