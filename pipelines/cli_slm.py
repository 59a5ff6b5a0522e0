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


@slm_app.command("generate")
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


@slm_app.command("eval")
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


def register(app: typer.Typer) -> None:
    app.add_typer(slm_app, name="slm")
