"""The ``slmfactory`` command line.

Verbs of the foundation live here (ingest, run, inspect, export, demo, corpus); the verbs of each product
folder live beside it in ``cli_<folder>.py`` (``register(app)``): the CLI is the top layer, so it may import
every folder, and no folder imports the CLI.
Exit codes: 2 when the run cannot proceed (bad arguments or recipe: nothing started), 3 when it finished but
rejected more than ``--max-rejected`` of its rows (they are in OUT/errors); bad rows alone never stop a run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..manifests.registry import CORPORA
from . import cli_export, cli_report, cli_slm, cli_stages, cli_synth, cli_tokenize
from .console import (ALLOW_CODE_HELP, EXECUTOR_HELP, FORCE_HELP, MAX_REJECTED_HELP, _fail, _run, console,
                      setup_logging)

KINDS = CORPORA.names()
app = typer.Typer(
    name="slmfactory",
    help="Speech corpora in, training-ready speech-LM datasets out.\n\n"
         "Typical flow (each run folder is the next one's corpus): "
         "`slmfactory ingest librispeech /data/LibriSpeech -o out/ls` → "
         "`slmfactory run units corpus=out/ls out=out/units` → "
         "`slmfactory run interleaved corpus=out/ls out=out/inter` → "
         "`slmfactory slm train out/inter/packed -o out/slm`; `slmfactory report OUT` / `slmfactory inspect OUT` "
         "to look at any run. `slmfactory demo` runs everything on a generated corpus with the offline defaults.\n\n"
         "Exit codes: 0 done; 2 bad arguments or recipe (nothing started); 3 the run finished but rejected more "
         "than --max-rejected of its rows (default 0.5; see OUT/errors).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


VERBOSE_HELP = "show Ray's own logs and progress, and our info lines (sets SLMFACTORY_VERBOSE=1)"


@app.callback()
def _global(verbose: bool = typer.Option(False, "-v", "--verbose", help=VERBOSE_HELP)) -> None:
    _verbose(verbose)


def _verbose(on: bool) -> None:
    """``-v`` before or after the verb: Ray's logs and progress stay on the console (executors, progress.py)."""
    if on:
        os.environ["SLMFACTORY_VERBOSE"] = "1"
    setup_logging(os.environ.get("SLMFACTORY_VERBOSE") == "1")


@app.command()
def ingest(
    kind: str = typer.Argument(..., metavar="KIND", help="corpus layout, one of: " + ", ".join(KINDS)
                               + " (`slmfactory corpus kinds` describes each; a typo gets a did-you-mean)"),
    corpus: Path = typer.Argument(..., help="corpus folder (or the .jsonl / lhotse manifest file, or a run folder)"),
    out: Path = typer.Option(..., "-o", "--out", help="output folder: OUT/manifest, OUT/errors, OUT/run.json"),
    min_seconds: float = typer.Option(1.0, help="shortest segment VAD keeps"),
    max_seconds: float = typer.Option(20.0, help="longest segment; longer speech is split at its quietest point"),
    shard_size: int = typer.Option(32, help="input files per shard (the unit of resume)"),
    executor: str = typer.Option("auto", help=EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: embedded local Ray)"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    max_rejected: Optional[float] = typer.Option(None, "--max-rejected", min=0.0, max=1.0, help=MAX_REJECTED_HELP),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root",
                                            help="accept audio paths outside the corpus root / manifest folder "
                                                 "(only for manifests you trust)"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help=VERBOSE_HELP),
) -> None:
    """Discover a corpus, decode every file once, resample to 16 kHz mono, cut long audio by VAD, drop
    duration/speaking-rate outliers and score quality (DNSMOS columns).

    Re-running into the same OUT resumes: finished shards are skipped.

    `slmfactory corpus kinds` describes each corpus layout.
    """
    _verbose(verbose)
    if kind not in KINDS:
        _fail(CORPORA.unknown_message(kind))
    if not corpus.exists():
        _fail(f"{corpus}: no such file or folder; give the corpus root (e.g. /data/LibriSpeech/train-clean-100)")
    _run("ingest", {"kind": kind, "corpus": str(corpus), "out": str(out), "min_seconds": min_seconds,
                    "max_seconds": max_seconds, "shard_size": shard_size,
                    **({"input.allow_outside_root": True} if allow_outside_root else {})},
         executor, address, f"ingest {kind}", force=force, max_rejected=max_rejected)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    recipe: str = typer.Argument(..., help="a recipe YAML, or the name of a shipped one (ingest, units, interleaved, ...)"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="output folder (overrides the recipe's output)"),
    executor: str = typer.Option("auto", help=EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or embedded Ray)"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    allow_code: Optional[list[str]] = typer.Option(None, "--allow-code", help=ALLOW_CODE_HELP),
    max_rejected: Optional[float] = typer.Option(None, "--max-rejected", min=0.0, max=1.0, help=MAX_REJECTED_HELP),
    verbose: bool = typer.Option(False, "-v", "--verbose", help=VERBOSE_HELP),
) -> None:
    """Run a YAML recipe. Extra KEY=VALUE arguments override vars or dotted keys.

    Examples: `slmfactory run units corpus=/data/ls out=out/units`, `slmfactory run units corpus=out/ingest` (a run
    folder is read as the manifest of that run),
    `slmfactory run pipelines/units.yaml stages.tokenize.params.kmeans=km/hubert_l6_k500`.
    The recipe is checked completely (names, parameters, types) before anything starts; a recipe may name only
    registered stages, hooks and backends (README "Trust model").
    """
    from .recipe import RecipeError, parse_overrides

    _verbose(verbose)
    try:
        overrides = parse_overrides(list(ctx.args))
    except RecipeError as e:
        _fail(str(e))
    if out is not None:
        overrides["output"] = str(out)
    _run(recipe, overrides, executor, address, f"run {recipe}", force=force, allow_code=allow_code,
         max_rejected=max_rejected)


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
    executor: str = typer.Option("ray", help="ray (the embedded local Ray, as a real run uses) or local (one process)"),
    verbose: bool = typer.Option(False, "-v", "--verbose", help=VERBOSE_HELP + "; each run's full summary"),
) -> None:
    """Generate a small corpus and run every shipped recipe on it with the offline defaults: one line per step,
    then every output with the command that continues from it (what steps print themselves: OUT/logs/)."""
    from .demo import run_demo

    _verbose(verbose)
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
