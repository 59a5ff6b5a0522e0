"""CLI verbs for spoken benchmarks: ``slmfactory slm pairs`` (pair texts) and ``slmfactory slm eval`` (scores)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def pairs_cmd(
    out: Path = typer.Option(..., "-o", "--out", help="pairs JSONL to write (the spoken_bench recipe's `pairs`)"),
    lexical: int = typer.Option(300, help="word / non-word pairs (sWUGGY-like)"),
    syntactic: int = typer.Option(320, help="grammatical / ungrammatical pairs over 8 paradigms (sBLIMP-like)"),
    story: int = typer.Option(100, help="story + coherent / swapped ending pairs (sSC/tSC-like)"),
    seed: int = typer.Option(0),
    voice: str = typer.Option("en_US-joe-medium", help="recorded per pair; the recipe speaks both members with it"),
    words: Optional[Path] = typer.Option(None, help="text file whose words (in the CMU dictionary) the lexical pairs "
                                                    "use, e.g. the training transcripts; default: frequent English"),
    published: List[str] = typer.Option([], help="NAME=PATH of a released benchmark instead (swuggy|sblimp = the "
                                                 "ZeroSpeech 2021 root, ssc|tsc = the folder); repeatable"),
    split: str = typer.Option("dev", help="ZeroSpeech split (dev; test gold files were withheld)"),
) -> None:
    """Write benchmark pairs: generated texts to speak, or a published set's audio files."""
    from ..slm import pairs as P

    if published:
        from ..slm.published import published_pairs

        rows = []
        for spec in published:
            name, sep, path = spec.partition("=")
            if not sep:
                raise typer.BadParameter(f"--published {spec!r}: write NAME=PATH, e.g. swuggy=/data/zerospeech2021")
            rows += published_pairs(name, path, split)
        n = P.write_pairs(rows, out)
        typer.echo(f"{n} pairs -> {out}; tokenize them with: slmfactory run spoken_bench pairs={out} "
                   f"audio_root={published[0].partition('=')[2]} train=<the training run folder> out=<bench dir>")
        return
    word_list = P.read_words(words) if words else None
    rows = P.make_pairs({"lexical": lexical, "syntactic": syntactic, "story": story}, seed=seed, voice=voice,
                        words=word_list)
    n = P.write_pairs(rows, out)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in P.KINDS}
    typer.echo(f"{n} pairs {kinds} -> {out}; speak and tokenize them with: slmfactory run spoken_bench pairs={out} "
               f"voice={voice} train=<the training run folder> out=<bench dir>")


def eval_cmd(
    model: Path = typer.Argument(..., help="speech LM folder (Hugging Face + speech_lm.json, from `slm train`)"),
    bench: Path = typer.Argument(..., help="a spoken_bench run folder (OUT), or a JSONL of token-id pairs "
                                           '{"positive": [ids], "negative": [ids]}'),
    train_data: Optional[Path] = typer.Option(None, "--train-data", help="the training run's OUT/packed: fits the "
                                                                          "unigram/bigram baselines printed beside"),
    marker: bool = typer.Option(True, help="prefix each sequence with the speech marker, as in training"),
    eos: bool = typer.Option(False, help="also score the [EOS] that ends each training document"),
    restrict: bool = typer.Option(False, help="modality-restricted softmax: normalise over unit ids + [EOS] only"),
    add_k: float = typer.Option(1.0, help="add-k smoothing of the baselines"),
    batch_tokens: int = typer.Option(4096, help="padded tokens per forward pass"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    out: Optional[Path] = typer.Option(None, "-o", help="write the result JSON here (with per-pair NLLs)"),
) -> None:
    """Pair accuracy per kind and paradigm (positive has the lower mean NLL; ties 0.5), model vs n-gram baselines."""
    from ..slm.evaluate import evaluate, render
    from ..slm.score import ScoreConfig

    cfg = ScoreConfig(marker=marker, eos=eos, restrict=restrict, batch_tokens=batch_tokens, device=device)
    try:
        res = evaluate(model, bench, train_data, cfg, k=add_k, per_pair=out is not None)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    render(res)
    if out:
        out.write_text(json.dumps(res, indent=1))
    summary = {k: {s: round(v[s], 4) for s in ("model", "unigram", "bigram") if s in v} | {"pairs": v["pairs"]}
               for k, v in res["kinds"].items()}
    typer.echo(json.dumps(summary))


def register(slm_app: typer.Typer) -> None:
    slm_app.command("eval")(eval_cmd)
    slm_app.command("pairs")(pairs_cmd)
