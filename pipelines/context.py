"""What a prepare/finalize hook gets: the run's output folder, recipe, seed and input rows."""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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


def iter_input(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows from a corpus kind (``kind: librispeech``...) or an earlier run's manifest (``kind: manifest``)."""
    from ..manifests.corpora import discover_input

    yield from discover_input(spec)
