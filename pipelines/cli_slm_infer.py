"""CLI verbs for inference with a trained speech LM: ``slmfactory slm generate``."""
from __future__ import annotations

from pathlib import Path

import typer


def generate_cmd(
    ckpt: Path = typer.Argument(..., help="folder written by `slmfactory slm train`"),
    prompt: str = typer.Option(..., help="comma-separated token ids"),
    max_new_tokens: int = typer.Option(150), temperature: float = typer.Option(0.8),
    top_k: int = typer.Option(25), seed: int = typer.Option(0),
) -> None:
    """Continue a prompt of token ids; prints the new ids."""
    from ..slm.evaluate import generate
    from ..slm.train import load_model

    model, _ = load_model(ckpt)
    ids = [int(x) for x in prompt.split(",") if x.strip()]
    typer.echo(",".join(map(str, generate(model, ids, max_new_tokens, temperature, top_k, seed))))


def register(slm_app: typer.Typer) -> None:
    slm_app.command("generate")(generate_cmd)
