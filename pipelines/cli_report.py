"""CLI verb ``slmfactory report OUT``: a self-contained HTML data card of a run folder (issue #14)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing yet: the report verb lands with pipelines/report.py."""
