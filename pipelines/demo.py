"""The demo: generate small corpora, then run every shipped recipe on the offline defaults.

Why: a new user's first command must show the whole product working on their machine with no
weights to fetch. Each step is an ordinary recipe run, so what the demo makes is what the same
recipe makes on a real corpus. Recipes that are not in this checkout are listed as skipped.

Why so quiet: the demo is read by a person. Each step prints one line (rows, rejected, time); at the end
one line per output folder says what it holds and the command that continues from it. What a step prints
itself (hook tables, warnings about the deliberately tiny corpus, model-loading bars) goes to
``OUT/logs/<step>.log``; ``-v`` (``SLMFACTORY_VERBOSE=1``) prints all of it, with each run's full summary.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from .recipe import PACKAGED

# (title, recipe name, corpus shape it reads, output folder, overrides) - run in this order
DEMO_STEPS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("ingest podcasts (VAD, quality)", "ingest", "podcasts", "ingest_podcasts", {"kind": "podcasts", "max_seconds": 8.0}),
    ("ingest librilight (known spans)", "ingest", "librilight", "ingest_librilight",
     {"kind": "librilight", "max_seconds": 8.0}),
    ("ingest bad-input folder", "ingest", "bad", "ingest_bad", {"kind": "folder", "max_rejected": 1.0}),
    ("speech units", "units", "librispeech", "units", {"kind": "librispeech"}),
    ("interleaved speech-text", "interleaved", "librispeech", "interleaved", {"kind": "librispeech"}),
    ("interleaved, podcasts transcribed by Whisper", "interleaved", "podcasts", "interleaved_podcasts",
     {"kind": "podcasts", "max_seconds": 8.0}),
    ("cross-modal instructions (LLM)", "synth_crossmodal", "librispeech", "synth_crossmodal", {"kind": "librispeech"}),
    ("spoken instructions (LLM + Piper)", "synth_instruct", "instructions", "synth_instruct", {}),
    ("spoken QA (LLM + Piper)", "synth_sqa", "librispeech", "synth_sqa", {"kind": "librispeech"}),
]
DELIBERATE = {"ingest_bad": "bad on purpose: see its errors/"}  # steps whose rejections are the point


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
    console.print(f"corpora generated under [bold]{root}[/] (espeak-ng speech, known transcripts and silences)",
                  soft_wrap=True)
    return made


def run_demo(out: Path, executor: str = "ray", console: Console | None = None,
             verbose: bool | None = None) -> list[dict[str, Any]]:
    from .console import print_summary
    from .runner import run_recipe

    console = console or Console()
    loud = os.environ.get("SLMFACTORY_VERBOSE") == "1" if verbose is None else verbose
    hooks = console if loud else Console()  # quiet: what hooks print lands in the step's log (stdout redirected)
    out = Path(out)
    corpora = make_corpora(out / "corpus", console)
    total = len(DEMO_STEPS) + 1
    results: list[dict[str, Any]] = []
    for i, (title, recipe, shape, folder, extra) in enumerate(DEMO_STEPS, 1):
        if not (PACKAGED / f"{recipe}.yaml").exists():
            results.append({"step": title, "status": "skipped (recipe not in this checkout)"})
            continue
        run_out = out / folder
        if loud:
            console.rule(f"[bold]{title}[/] — pipelines/{recipe}.yaml")
        t0 = time.time()
        with _step_output(out / "logs" / f"{folder}.log", loud):
            res = run_recipe(recipe, {"corpus": str(corpora[shape]), "out": str(run_out), **extra},
                             executor=executor, console=hooks)
        seconds = time.time() - t0
        if loud:
            print_summary(res, title, recipe)
        console.print(f"[{i}/{total}] {title}: {res.rows} rows, {res.errors} rejected, "
                      f"{res.hours * 60:.1f} min of audio, {seconds:.0f} s", soft_wrap=True, highlight=False)
        results.append({"step": title, "status": "ok", "recipe": recipe, "rows": res.rows, "errors": res.errors,
                        "hours": res.hours, "seconds": seconds, "out": str(run_out),
                        "report": _report(run_out), **{
                            k: v for k, v in (res.extras or {}).items() if isinstance(v, (int, float, str))}})
    with _step_output(out / "logs" / "slm.log", loud):
        trained = _train_small_lm(out, total)
    if trained.get("line"):
        console.print(trained.pop("line"), soft_wrap=True, highlight=False)
    results.append(trained)
    _print_overview(results, console)
    if not loud:
        console.print(f"What each step printed itself: {out}/logs/<step>.log (or run the demo with -v)",
                      soft_wrap=True, highlight=False)
    return results


@contextlib.contextmanager
def _step_output(log: Path, loud: bool):
    """Unless ``loud``: what a step prints (stdout, stderr, our warnings) goes to ``log``, not the console."""
    if loud:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            yield
        except BaseException as e:  # the failure itself still reaches the console, with where the rest is
            print(f"{type(e).__name__}: {e}", file=sys.__stderr__)
            print(f"(the step's output: {log})", file=sys.__stderr__)
            raise


# --- HTML data cards ------------------------------------------------------------------------------------------
def _report(run_out: Path) -> str | None:
    """The HTML data card of one output folder (OUT/report.html), or None when it could not be written: a data
    card must never fail the demo (the overview then leaves it out)."""
    from .report import write_report

    try:
        return str(write_report(run_out))
    except Exception:  # noqa: BLE001
        return None


def _train_small_lm(out: Path, total: int) -> dict[str, Any]:
    """Last step: a few CPU steps of the bundled speech LM on the interleaved recipe's packed blocks."""
    packed = out / "interleaved" / "packed"
    if not list(packed.glob("*.parquet")):
        return {"step": "train speech LM", "status": "skipped (no packed shards)"}
    from ..slm.train import TrainConfig, train

    t0 = time.time()
    small = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
             "intermediate_size": 384}  # a cold smoke run: the TWIST init (`--init smollm2`) is docs/slm.md's table
    res = train(TrainConfig(data=str(packed), out=str(out / "slm"), steps=20, batch_size=2, checkpoint_every=20,
                            model=small))
    line = (f"[{total}/{total}] train a small speech LM (20 CPU steps): loss {res['first_loss']:.3f} -> "
            f"{res['last_loss']:.3f}, {time.time() - t0:.0f} s")
    return {"step": "train speech LM", "status": "ok", "rows": "", "errors": "", "out": res["out"],
            "first_loss": res["first_loss"], "last_loss": res["last_loss"], "line": line}


def _print_overview(results: list[dict[str, Any]], console: Console) -> None:
    """One line per output: what it holds and the command that continues from it."""
    from .summary import next_commands, outputs

    console.print("[bold]Outputs[/] (look at any with `slmfactory inspect OUT` or `slmfactory report OUT`):")
    for r in results:
        if r["status"] != "ok":
            console.print(f"  {r['step']}: {r['status']}", soft_wrap=True, highlight=False)
            continue
        o = Path(r["out"])
        if "recipe" not in r:  # the trained speech LM
            console.print(f"  {o}/  checkpoint -> slmfactory slm generate {o} --prompt-text \"the cat\" "
                          f"--modality speech", soft_wrap=True, highlight=False, markup=False)
            continue
        extra = " ".join(f"{n}/" for n, p, _ in outputs({"out_dir": o})
                         if p.is_dir() and n not in ("manifest", "errors", "logs"))
        what = DELIBERATE.get(o.name) or (next_commands(r["recipe"], o)[0] if r["recipe"] != "units"
                                           else f"slmfactory inspect {o}")
        console.print(f"  {o}/  {r['rows']} rows, {r['errors']} rejected{'  +' + extra if extra else ''} -> {what}",
                      soft_wrap=True, highlight=False, markup=False)
    reports = [r["report"] for r in results if r.get("report")]
    if reports:
        console.print(f"HTML data cards: {len(reports)} pages, e.g. {reports[0]}", soft_wrap=True, highlight=False)
