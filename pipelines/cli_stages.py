"""CLI verbs of stages/: ``slmfactory align`` (one file, for checking an aligner before a big run)."""
from __future__ import annotations

from typing import Optional

import typer

from ..manifests.registry import ALIGNERS


def register(app: typer.Typer) -> None:
    @app.command("align")
    def align(audio: str = typer.Argument(..., help="audio file"),
              text: str = typer.Argument(..., help="its transcript (or @file.txt)"),
              backend: str = typer.Option("pocketsphinx", help="aligner backend: " + "; ".join(ALIGNERS.help().splitlines())),
              model_path: Optional[str] = typer.Option(None, help="local Wav2Vec2ForCTC directory for --backend ctc"),
              min_coverage: float = typer.Option(0.8)) -> None:
        """Force-align a transcript to an audio file and print word times."""
        from pathlib import Path

        from rich.console import Console
        from rich.table import Table

        from ..stages.align import AlignStage

        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        out = AlignStage(backend=backend, model_path=model_path, min_coverage=min_coverage)(
            {"id": [Path(audio).stem], "audio_path": [audio], "start": [0.0], "duration": [None], "text": [text]})
        con = Console()
        if out["error"][0]:
            con.print(f"[red]error[/red] {out['error'][0]}")
            raise typer.Exit(1)
        t = Table(title=f"{audio} ({out['aligner'][0]})")
        for c in ("word", "start", "end", "score"):
            t.add_column(c)
        for w in out["words"][0]:
            t.add_row(w["word"], f"{w['start']:.2f}", f"{w['end']:.2f}", f"{w['score']:.2f}")
        con.print(t)
