"""CLI verbs for spoken benchmarks: ``slmfactory slm eval``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def eval_cmd(
    ckpt: Path = typer.Argument(...),
    pairs: Path = typer.Argument(..., help='JSONL of {"positive": [ids], "negative": [ids]} (sWUGGY/sBLIMP/sSC style)'),
    out: Optional[Path] = typer.Option(None, "-o", help="write the result JSON here"),
) -> None:
    """Pair accuracy: share of pairs whose positive has the lower mean NLL (ties 0.5)."""
    from ..slm.evaluate import load_pairs, pair_accuracy
    from ..slm.train import load_model

    model, _ = load_model(ckpt)
    p = load_pairs(pairs)
    res = {"pairs": len(p), "accuracy": pair_accuracy(model, p)}
    if out:
        out.write_text(json.dumps(res))
    typer.echo(json.dumps(res))


def register(slm_app: typer.Typer) -> None:
    slm_app.command("eval")(eval_cmd)
