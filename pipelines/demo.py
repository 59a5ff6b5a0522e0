"""The demo: generate small corpora, then run every shipped recipe on the offline defaults.

Why: a new user's first command must show the whole product working on their machine with no
weights to fetch. Each step is an ordinary recipe run, so what the demo prints is what the same
recipe prints on a real corpus. Recipes that are not in this checkout are listed as skipped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .recipe import PACKAGED

# (title, recipe name, corpus shape it reads, output folder, overrides) - run in this order
DEMO_STEPS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("ingest podcasts (VAD, quality)", "ingest", "podcasts", "ingest_podcasts", {"kind": "podcasts", "max_seconds": 8.0}),
    ("ingest librilight (known spans)", "ingest", "librilight", "ingest_librilight",
     {"kind": "librilight", "max_seconds": 8.0}),
    ("ingest bad-input folder", "ingest", "bad", "ingest_bad", {"kind": "folder"}),
    ("speech units", "units", "librispeech", "units", {"kind": "librispeech"}),
    ("interleaved speech-text", "interleaved", "librispeech", "interleaved", {"kind": "librispeech"}),
    ("interleaved, podcasts transcribed by Whisper", "interleaved", "podcasts", "interleaved_podcasts",
     {"kind": "podcasts", "max_seconds": 8.0}),
    ("cross-modal instructions (LLM)", "synth_crossmodal", "librispeech", "synth_crossmodal", {"kind": "librispeech"}),
    ("spoken instructions (LLM + Piper)", "synth_instruct", "instructions", "synth_instruct", {}),
    ("spoken QA (LLM + Piper)", "synth_sqa", "librispeech", "synth_sqa", {"kind": "librispeech"}),
]


def make_corpora(root: Path, console: Console) -> dict[str, Path]:
    from ..manifests import generate

    made = {}
    for shape, fn, kw in (("librispeech", generate.make_librispeech, {"speakers": 3, "utts": 4}),
                          ("librilight", generate.make_librilight, {}),
                          ("podcasts", generate.make_podcasts, {}),
                          ("folder", generate.make_folder, {}),
                          ("bad", generate.make_bad_corpus, {})):
        path = root / shape
        if not path.exists() or not any(path.iterdir()):
            fn(path, **kw)
        made[shape] = path
    made["instructions"] = PACKAGED.parent / "synth" / "data"
    console.print(f"corpora generated under [bold]{root}[/] (espeak-ng speech, known transcripts and silences)")
    return made


def run_demo(out: Path, executor: str = "ray", console: Console | None = None) -> list[dict[str, Any]]:
    from .console import print_summary
    from .runner import run_recipe

    console = console or Console()
    out = Path(out)
    corpora = make_corpora(out / "corpus", console)
    results: list[dict[str, Any]] = []
    for title, recipe, shape, folder, extra in DEMO_STEPS:
        if not (PACKAGED / f"{recipe}.yaml").exists():
            results.append({"step": title, "status": "skipped (recipe not in this checkout)"})
            continue
        run_out = out / folder
        overrides = {("root" if recipe == "ingest" else "corpus"): str(corpora[shape]), "out": str(run_out), **extra}
        console.rule(f"[bold]{title}[/] — pipelines/{recipe}.yaml")
        t0 = time.time()
        res = run_recipe(recipe, overrides, executor=executor, console=console)
        print_summary(res, title)
        results.append({"step": title, "status": "ok", "rows": res.rows, "errors": res.errors,
                        "hours": res.hours, "seconds": time.time() - t0, "out": str(run_out), **{
                            k: v for k, v in (res.extras or {}).items() if isinstance(v, (int, float, str))}})
    results.append(_train_small_lm(out, console))
    _print_overview(results, console)
    return results


def _train_small_lm(out: Path, console: Console) -> dict[str, Any]:
    """Last step: a few CPU steps of the bundled speech LM on the interleaved recipe's packed blocks."""
    packed = out / "interleaved" / "packed"
    if not list(packed.glob("*.parquet")):
        return {"step": "train speech LM", "status": "skipped (no packed shards)"}
    from ..slm.train import TrainConfig, train

    console.rule("[bold]train a small speech LM[/] — slm/ (20 CPU steps; `slmfactory slm train` for more)")
    res = train(TrainConfig(data=str(packed), out=str(out / "slm"), steps=20, batch_size=2, checkpoint_every=20))
    console.print(f"loss {res['first_loss']:.3f} -> {res['last_loss']:.3f} in {res['seconds']:.1f} s; "
                  f"checkpoint in {res['out']}")
    return {"step": "train speech LM", "status": "ok", "rows": "", "errors": "", "out": res["out"],
            "first_loss": res["first_loss"], "last_loss": res["last_loss"]}


def _print_overview(results: list[dict[str, Any]], console: Console) -> None:
    t = Table(title="SLM Factory demo", header_style="bold")
    for c in ("step", "status", "rows", "errors", "output"):
        t.add_column(c)
    for r in results:
        t.add_row(r["step"], r["status"], str(r.get("rows", "")), str(r.get("errors", "")), r.get("out", ""))
    console.print(t)
    console.print("Look inside with `slmfactory inspect <output>`; load with polars.read_parquet('<output>/manifest/*.parquet').")
