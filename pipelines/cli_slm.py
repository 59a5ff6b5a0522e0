"""CLI verbs of the speech LM: ``slmfactory slm train`` here; ``generate``/``eval`` register from their modules."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

slm_app = typer.Typer(help="Train, sample from and evaluate a speech LM on packed shards.", no_args_is_help=True)

TRAIN_HELP = """Train (or resume) a speech LM on packed blocks; the result is a Hugging Face model folder.

DATA is the OUT/packed folder of the interleaved recipe (shard-*.parquet + dataset_info.json).

OUT gets the final model (config.json, model.safetensors, speech_lm.json, and the expanded tokenizer when initialised from a text LM), loadable with AutoModelForCausalLM.from_pretrained(OUT); metrics.jsonl and metrics.png (train and held-out loss); checkpoints/step-N (the last --keep-last). Re-run the same command to resume exactly where it stopped; a changed setting is refused, naming the keys that differ (--minutes may change).

Start from a text LM (TWIST / Slam, the default --init smollm2): the packed text must use that LM's tokenizer, so make the data with it: `slmfactory run interleaved corpus=... out=out/inter text_tokenizer=<LM dir>` (the bundled SmolLM2's dir: `python -m slmfactory.manifests.models prepare`).

Examples: `slmfactory slm train out/inter/packed -o out/slm --minutes 30` ; `slmfactory slm train out/inter/packed -o out/cold --init cold --steps 500 --hidden-size 256` ; `slmfactory slm train out/inter/packed -o out/slm --tokens 50000000 --workers 4` (Ray Train, DDP).
"""


@slm_app.command("train", help=TRAIN_HELP)
def train_cmd(
    data: Path = typer.Argument(..., help="packed shards folder (OUT/packed of the interleaved recipe)"),
    out: Path = typer.Option(..., "-o", "--out", help="model + checkpoint folder (re-run to resume)"),
    init: str = typer.Option("smollm2", help="smollm2 (bundled SmolLM2-135M-Instruct, TWIST init) | cold "
                             "(small random Llama) | PATH to a local HF causal-LM folder"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps (fixes the cosine schedule)"),
    tokens: Optional[int] = typer.Option(None, help="token budget (steps = tokens / tokens per step)"),
    minutes: Optional[float] = typer.Option(None, help="wall-clock cap; alone, it also sets the schedule "
                                            "(default when no budget is given: --steps 200)"),
    batch_size: int = typer.Option(8, help="blocks per micro-batch per worker"),
    grad_accum: int = typer.Option(1, help="micro-batches per optimizer step"),
    workers: int = typer.Option(1, help=">1: Ray Train TorchTrainer with DDP (gloo on CPU, nccl on GPUs)"),
    lr: float = typer.Option(1e-3, help="peak learning rate (cosine to --min-lr after 1% warm-up; slamkit)"),
    min_lr: float = typer.Option(5e-5),
    precision: str = typer.Option("auto", help="auto | bf16 | fp32 (auto: bf16 on GPUs that support it and on "
                                  "CPUs where a bf16 matmul is >=1.3x faster)"),
    val_fraction: float = typer.Option(0.02, help="share of blocks held out for validation loss"),
    eval_every: int = typer.Option(50, help="steps between validation losses"),
    checkpoint_every: int = typer.Option(100), keep_last: int = typer.Option(2),
    text_corpus: Optional[Path] = typer.Option(None, help="extra text (one document per line, or JSONL "
                                               "with 'text') tokenized with the packed set's text tokenizer"),
    text_share: float = typer.Option(0.0, help="share of training tokens taken from --text-corpus"),
    hidden_size: int = typer.Option(256, help="cold init: width"),
    layers: int = typer.Option(4, help="cold init: transformer layers"),
    heads: int = typer.Option(4, help="cold init: attention heads"),
    seed: int = typer.Option(0), device: str = typer.Option("auto", help="auto, cpu, cuda"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's, one per core). Give "
                                          "each run its share when several train on one machine: two 2-thread "
                                          "runs on 2 cores took a SmolLM2 run from 190 to 10 tokens/s"),
) -> None:
    from ..slm.train import TrainConfig, train

    model = {"hidden_size": hidden_size, "num_hidden_layers": layers, "num_attention_heads": heads,
             "num_key_value_heads": heads, "intermediate_size": 3 * hidden_size} if init == "cold" else {}
    try:
        cfg = TrainConfig(data=str(data), out=str(out), init=init, model=model, steps=steps, tokens=tokens,
                          minutes=minutes, batch_size=batch_size, grad_accum=grad_accum, workers=workers, lr=lr,
                          min_lr=min_lr, precision=precision, val_fraction=val_fraction, eval_every=eval_every,
                          checkpoint_every=checkpoint_every, keep_last=keep_last, seed=seed, device=device,
                          text_corpus=str(text_corpus) if text_corpus else None, text_share=text_share,
                          threads=threads)
        res = train(cfg)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    res.pop("losses", None)
    typer.echo(json.dumps(res, indent=1))


def register(app: typer.Typer) -> None:
    from . import cli_slm_bench, cli_slm_infer

    for verbs in (cli_slm_infer, cli_slm_bench):  # generate | eval, pairs (each module adds its verbs to `slm`)
        verbs.register(slm_app)
    app.add_typer(slm_app, name="slm")
