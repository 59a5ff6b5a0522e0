"""CLI verb ``slmfactory report OUT``: a self-contained HTML data card of a run folder (issue #14)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .console import _fail, console


def report(
    out: Path = typer.Argument(..., help="a run folder (the output of `slmfactory run`/`ingest`/`synth`)"),
    dest: Optional[Path] = typer.Option(None, "-o", "--output", help="where to write the page "
                                        "(default OUT/report.html)"),
    samples: int = typer.Option(10, help="sample rows shown with their audio, text, units and alignment"),
) -> None:
    """Write one self-contained HTML page about a run: duration, speaker, unit (Zipf), token and quality-score
    plots, error reasons, and sample rows with audio players. Opens offline (plots and audio are inline)."""
    from .report import write_report

    try:
        path = write_report(out, dest, samples=samples)
    except FileNotFoundError as e:
        _fail(str(e))
    size = path.stat().st_size
    console.print(f"report: [bold]{path}[/] ({size / 1e6:.1f} MB); open it in a browser "
                  f"(file://{path.resolve()})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(report)
