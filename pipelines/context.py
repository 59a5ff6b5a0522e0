"""What a prepare/finalize hook gets: the run's output folder, recipe, seed and input rows."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from .recipe import Recipe


@dataclass
class RunContext:
    out_dir: Path
    recipe: Recipe
    seed: int
    console: Any = None
    extras: dict[str, Any] = field(default_factory=dict)  # hooks may leave facts for run.json

    def iter_input(self) -> Iterator[dict[str, Any]]:
        """The recipe's input rows (lazy), as the runner's discovery sees them."""
        return iter_input(self.recipe.input)

    def manifest_paths(self) -> list[str]:
        return sorted(glob.glob(str(self.out_dir / "manifest" / "*.parquet")))

    def error_paths(self) -> list[str]:
        return sorted(glob.glob(str(self.out_dir / "errors" / "*.parquet")))


def iter_input(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows from a corpus recipe (``kind: librispeech``...) or an existing manifest (``kind: manifest``)."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "manifest":
        yield from iter_manifest(spec.pop("path"))
        return
    from ..manifests.corpora import discover

    root = spec.pop("root", None)
    if root is None:
        raise ValueError(f"input of kind {kind!r} needs a 'root' (the corpus folder or file)")
    opts = dict(spec.pop("options", {}) or {})
    opts.update(spec)
    yield from discover(kind, root, **opts)


def iter_manifest(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Rows of a manifest: a run folder (uses its manifest/), a folder of Parquet shards, or one file."""
    p = Path(path)
    if (p / "manifest").is_dir():
        p = p / "manifest"
    files = sorted(glob.glob(str(p / "*.parquet"))) if p.is_dir() else [str(p)]
    if not files or not all(os.path.exists(f) for f in files):
        raise FileNotFoundError(f"{path}: no Parquet manifest found; run `slmfactory ingest` first or check the path")
    for f in files:
        pf = pq.ParquetFile(f)
        for rb in pf.iter_batches(batch_size=1024):
            yield from rb.to_pylist()
