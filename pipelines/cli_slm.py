"""CLI verbs of the trainer: ``slmfactory slm train | generate | eval``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

slm_app = typer.Typer(help="Train, sample from and evaluate the bundled speech LM on packed shards.",
                      no_args_is_help=True)


@slm_app.command("train")
def train_cmd(
    data: Path = typer.Argument(..., help="packed shards folder (OUT/packed from the interleaved recipe)"),
    out: Path = typer.Option(..., "-o", "--out", help="checkpoint folder (re-run to resume)"),
    steps: int = typer.Option(200), batch_size: int = typer.Option(8), lr: float = typer.Option(1e-3),
    n_layer: int = typer.Option(4), n_embd: int = typer.Option(128), n_head: int = typer.Option(4),
    seed: int = typer.Option(0), device: str = typer.Option("auto", help="auto, cpu, cuda"),
) -> None:
    """Train (or resume) on packed blocks; writes model.safetensors, state.json, train_log.jsonl."""
    from ..slm.train import TrainConfig, train

    res = train(TrainConfig(data=str(data), out=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            device=device, model={"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head}))
    typer.echo(json.dumps(res, indent=1))


def register(app: typer.Typer) -> None:
    from . import cli_slm_bench, cli_slm_infer

    for verbs in (cli_slm_infer, cli_slm_bench):  # generate | eval, pairs (each module adds its verbs to `slm`)
        verbs.register(slm_app)
    app.add_typer(slm_app, name="slm")
