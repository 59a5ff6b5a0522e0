"""``slmfactory synth ...``: one shortcut per recipe, plus ``voices`` to list the TTS voices.

Each shortcut fills the recipe's vars and runs it like ``slmfactory run``; every other var stays
reachable with extra KEY=VALUE arguments (e.g. ``n_pairs=5 speak_question=false``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..manifests.registry import CORPORA, LLM_BACKENDS, TTS_BACKENDS
from .console import EXECUTOR_HELP, MAX_REJECTED_HELP

synth_app = typer.Typer(help="Synthesize instruction data: cross-modal, spoken instructions, spoken QA.",
                        no_args_is_help=True)
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
LLM_HELP = ("LLM as YAML, e.g. \"{backend: vllm, model_path: /models/qwen}\", \"{backend: openai, base_url: "
            "http://localhost:8000/v1, model: qwen}\", \"{backend: transformers, model_path: ./tiny}\"; "
            f"backends: {', '.join(LLM_BACKENDS.names())}; default transformers with no model_path = the bundled "
            "SmolLM2-135M-Instruct (template = rules, no model)")
KIND_HELP = f"corpus kind (default librispeech): {', '.join(CORPORA.names())}"
TTS_HELP = f"TTS backend: {', '.join(TTS_BACKENDS.names())} (default espeak)"


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")


def _go(ctx: typer.Context, recipe: str, corpus: Path, out: Path, kind: Optional[str], llm: Optional[str],
        executor: str, address: Optional[str], max_rejected: Optional[float] = None, **extra: Any) -> None:
    import yaml

    from .console import _fail, _run
    from .recipe import RecipeError, parse_overrides

    if not corpus.exists():
        _fail(f"{corpus}: not found; give the corpus folder, the JSONL file, or a previous run's OUT folder")
    try:
        overrides = parse_overrides(list(ctx.args))
    except RecipeError as e:
        _fail(str(e))
    overrides.update({"corpus": str(corpus), "out": str(out), **{k: v for k, v in extra.items() if v is not None}})
    if kind:
        overrides["kind"] = kind
    if llm:
        spec = yaml.safe_load(llm)
        if not isinstance(spec, dict) or "backend" not in spec:
            _fail(f"--llm {llm!r}: give a YAML mapping with a backend, e.g. \"{{backend: template}}\"")
        overrides["llm"] = spec
    res = _run(recipe, overrides, executor, address, f"synth {recipe}", max_rejected=max_rejected)
    print(f"Hugging Face dataset: {Path(out) / 'hf'} (datasets.load_dataset('{Path(out) / 'hf'}', split='train'))")
    return res


@synth_app.command("crossmodal", context_settings=EXTRA)
def crossmodal(ctx: typer.Context,
               corpus: Path = typer.Argument(..., help="transcribed corpus root, or a run folder (read as its manifest)"),
               out: Path = typer.Option(..., "-o", "--out"),
               kind: Optional[str] = typer.Option(None, help=KIND_HELP),
               llm: Optional[str] = typer.Option(None, help=LLM_HELP + " (extends the template pool)"),
               executor: str = typer.Option("auto", help=EXECUTOR_HELP), address: Optional[str] = typer.Option(None),
        max_rejected: Optional[float] = typer.Option(None, "--max-rejected", min=0.0, max=1.0, help=MAX_REJECTED_HELP)) -> None:
    """SpeechGPT-style ASR/TTS instructions from transcribed segments (pipelines/synth_crossmodal.yaml)."""
    _go(ctx, "synth_crossmodal", corpus, out, kind, llm, executor, address, max_rejected)


@synth_app.command("instruct", context_settings=EXTRA)
def instruct(ctx: typer.Context,
             corpus: Path = typer.Argument(..., help="Alpaca/Dolly JSONL file (or a local HF dataset with --kind hf)"),
             out: Path = typer.Option(..., "-o", "--out"),
             kind: Optional[str] = typer.Option(None, help="jsonl (default) or hf"),
             llm: Optional[str] = typer.Option(None, help=LLM_HELP),
             tts: Optional[str] = typer.Option(None, help=TTS_HELP),
             executor: str = typer.Option("auto", help=EXECUTOR_HELP), address: Optional[str] = typer.Option(None),
        max_rejected: Optional[float] = typer.Option(None, "--max-rejected", min=0.0, max=1.0, help=MAX_REJECTED_HELP)) -> None:
    """InstructS2S-style spoken instructions and answers (pipelines/synth_instruct.yaml)."""
    _go(ctx, "synth_instruct", corpus, out, kind, llm, executor, address, max_rejected, tts_backend=tts)


@synth_app.command("sqa", context_settings=EXTRA)
def sqa(ctx: typer.Context,
        corpus: Path = typer.Argument(..., help="transcribed corpus root, or a run folder (read as its manifest)"),
        out: Path = typer.Option(..., "-o", "--out"),
        kind: Optional[str] = typer.Option(None, help=KIND_HELP),
        llm: Optional[str] = typer.Option(None, help=LLM_HELP),
        n_pairs: Optional[int] = typer.Option(None, help="question-answer pairs per transcript (default 3)"),
        executor: str = typer.Option("auto", help=EXECUTOR_HELP), address: Optional[str] = typer.Option(None),
        max_rejected: Optional[float] = typer.Option(None, "--max-rejected", min=0.0, max=1.0, help=MAX_REJECTED_HELP)) -> None:
    """COSMIC/SALMONN-style spoken QA from transcripts (pipelines/synth_sqa.yaml)."""
    _go(ctx, "synth_sqa", corpus, out, kind, llm, executor, address, max_rejected, n_pairs=n_pairs)


@synth_app.command("voices")
def voices(backend: str = typer.Option("espeak", help=TTS_HELP),
           model: Optional[str] = typer.Option(None, help="local model path")) -> None:
    """List the voices a TTS backend offers (what the voice sampler draws from)."""
    from ..synth.tts import TtsError, make_tts
    from .console import _fail

    params = {} if backend == "espeak" else ({"model_dir": model} if backend == "coqui" else {"model_path": model})
    try:
        tts = make_tts(backend, **params)
    except TtsError as e:
        _fail(str(e))
    for v in tts.voices():
        print(v)
