"""CLI verb ``slmfactory export``: a run folder -> Hugging Face / Lhotse layouts."""
from __future__ import annotations

from pathlib import Path

import typer

from .console import _fail, console


def export(
    path: Path = typer.Argument(..., help="a run folder or manifest folder"),
    to: str = typer.Option(..., "--to", help="hf (a datasets folder with an Audio feature) or lhotse (JSONL.gz)"),
    out: Path = typer.Option(..., "-o", "--out", help="where to write the export"),
) -> None:
    """Export a manifest as a Hugging Face dataset (load_from_disk) or Lhotse manifests."""
    from ..manifests.export import TARGETS, export as do_export

    if to not in TARGETS:
        _fail(f"--to must be {' or '.join(TARGETS)}, got {to!r}")
    if not path.exists():
        _fail(f"{path}: not found")
    result = do_export(path, to, out)
    console.print(f"exported to [bold]{result or out}[/]")




def register(app: typer.Typer) -> None:
    app.command()(export)
