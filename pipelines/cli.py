"""The ``slmfactory`` command line.

Verbs of the foundation live here (ingest, run, inspect, export, demo, corpus); the verbs of each product
folder live beside it in ``cli_<folder>.py`` (``register(app)``): the CLI is the top layer, so it may import
every folder, and no folder imports the CLI.
Exit codes are non-zero only when the run itself cannot proceed: bad rows go to OUT/errors.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..manifests.registry import CORPORA
from . import cli_export, cli_report, cli_slm, cli_stages, cli_synth, cli_tokenize
from .console import ALLOW_CODE_HELP, EXECUTOR_HELP, FORCE_HELP, _fail, _run, console

app = typer.Typer(
    name="slmfactory",
    help="Speech corpora in, training-ready speech-LM datasets out.\n\n"
         "Typical flow: `slmfactory ingest librispeech /data/LibriSpeech -o out/ls` → "
         "`slmfactory run units out=out/units corpus=/data/LibriSpeech` → `slmfactory inspect out/units`. "
         "`slmfactory demo` runs everything on a generated corpus with the offline defaults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
@app.command()
def ingest(
    kind: str = typer.Argument(..., help="corpus layout: " + ", ".join(CORPORA.names())),
    root: Path = typer.Argument(..., help="corpus folder (or the .jsonl / lhotse manifest file)"),
    out: Path = typer.Option(..., "-o", "--out", help="output folder: OUT/manifest, OUT/errors, OUT/run.json"),
    min_seconds: float = typer.Option(1.0, help="shortest segment VAD keeps"),
    max_seconds: float = typer.Option(20.0, help="longest segment; longer speech is split at its quietest point"),
    shard_size: int = typer.Option(32, help="input files per shard (the unit of resume)"),
    executor: str = typer.Option("ray", help=EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: embedded local Ray)"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root",
                                            help="accept audio paths outside the corpus root / manifest folder "
                                                 "(only for manifests you trust)"),
) -> None:
    """Discover a corpus, decode every file once, resample to 16 kHz mono, cut long audio by VAD, drop
    duration/speaking-rate outliers and score quality (DNSMOS columns).

    Re-running into the same OUT resumes: finished shards are skipped.

    `slmfactory corpus kinds` describes each corpus layout.
    """
    if kind not in CORPORA.names():
        _fail(CORPORA.unknown_message(kind))
    if not root.exists():
        _fail(f"{root}: no such file or folder; give the corpus root (e.g. /data/LibriSpeech/train-clean-100)")
    _run("ingest", {"kind": kind, "root": str(root), "out": str(out), "min_seconds": min_seconds,
                    "max_seconds": max_seconds, "shard_size": shard_size,
                    **({"input.allow_outside_root": True} if allow_outside_root else {})},
         executor, address, f"ingest {kind}", force=force)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    recipe: str = typer.Argument(..., help="a recipe YAML, or the name of a shipped one (ingest, units, interleaved, ...)"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="output folder (overrides the recipe's output)"),
    executor: str = typer.Option("ray", help=EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or embedded Ray)"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    allow_code: Optional[list[str]] = typer.Option(None, "--allow-code", help=ALLOW_CODE_HELP),
) -> None:
    """Run a YAML recipe. Extra KEY=VALUE arguments override vars or dotted keys.

    Examples: `slmfactory run units corpus=/data/ls out=out/units`,
    `slmfactory run pipelines/units.yaml stages.tokenize.params.kmeans=km/hubert_l6_k500`.
    The recipe is checked completely (names, parameters, types) before anything starts; a recipe may name only
    registered stages, hooks and backends (README "Trust model").
    """
    from .recipe import RecipeError, parse_overrides

    try:
        overrides = parse_overrides(list(ctx.args))
    except RecipeError as e:
        _fail(str(e))
    if out is not None:
        overrides["output"] = str(out)
    _run(recipe, overrides, executor, address, f"run {recipe}", force=force, allow_code=allow_code)


@app.command("inspect")
def inspect_cmd(path: Path = typer.Argument(..., help="a run folder, a manifest folder or a Parquet file")) -> None:
    """Counts, hours, speakers, a duration histogram, and per-column views (units, tokens, messages)."""
    from .inspect import inspect_path

    if not path.exists():
        _fail(f"{path}: not found; give a run folder (with manifest/) or a Parquet file")
    inspect_path(path, console)


corpus_app = typer.Typer(help="Corpus layouts: describe the kinds, or generate small corpora with known truth "
                              "(espeak-ng).", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("kinds")
def corpus_kinds() -> None:
    """The corpus kinds `ingest` and a recipe's `input: {kind: ...}` accept, one line each."""
    print(CORPORA.help())


@corpus_app.command("generate")
def corpus_generate(
    kind: str = typer.Argument(..., help="librispeech, librilight, podcasts, folder or bad"),
    out: Path = typer.Argument(..., help="output folder"),
) -> None:
    """Write a small corpus of the given shape (needs espeak-ng)."""
    from ..manifests import generate

    if kind not in generate.SHAPES:
        _fail(f"unknown corpus shape {kind!r}; choose one of {', '.join(generate.SHAPES)}")
    generate.SHAPES[kind](out)
    console.print(f"wrote {kind} corpus to [bold]{out}[/]")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "-o", "--out", help="demo output folder"),
    executor: str = typer.Option("ray", help=EXECUTOR_HELP),
) -> None:
    """Generate a small corpus and run every shipped recipe on it with the offline defaults."""
    from .demo import run_demo

    run_demo(out, executor=executor, console=console)


for _verbs in (cli_tokenize, cli_stages, cli_synth, cli_slm, cli_export, cli_report):  # each adds its verbs
    _verbs.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        console.print("interrupted; re-run the same command to resume from the finished shards")
        sys.exit(130)


if __name__ == "__main__":
    main()
