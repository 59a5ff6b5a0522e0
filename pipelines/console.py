"""Console output shared by the CLI verbs and the demo: errors, the run summary, running a recipe.

Why apart from ``cli.py``: the verb modules (``cli_*.py``) and the demo use these helpers; keeping them
here means none of them imports ``cli.py``, which imports all of them (no cycle).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .summary import field, next_commands, outputs, rejected_warning

console = Console()
FORCE_HELP = "run in an output folder that holds another recipe's output (it is emptied first)"
ALLOW_CODE_HELP = ("allow this module:Name (a stage class or hook function that is not registered) to run; "
                   "repeatable. Only for code you trust: see the README 'Trust model'")
EXECUTOR_HELP = ("auto (default: one local process for small inputs, else Ray; says which and why), ray (embedded "
                 "local Ray, or the cluster in RAY_ADDRESS / --address) or local (one process, for debugging)")
MAX_REJECTED_HELP = ("warn and exit 3 when more than this share of the rows is rejected (default: the recipe's "
                     "max_rejected, 0.5)")
EXIT_TOO_MANY_REJECTED = 3


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)
    raise typer.Exit(code)


def verbose() -> bool:
    return os.environ.get("SLMFACTORY_VERBOSE") == "1"


class _ConsoleHandler(logging.Handler):
    """Our own warnings (``slmfactory.*`` loggers: ignored transcripts, reserved CPUs) as one console line each."""

    def emit(self, record: logging.LogRecord) -> None:
        style = "yellow" if record.levelno >= logging.WARNING else "dim"
        console.print(f"[{style}]{record.levelname.lower()}:[/] {record.getMessage()}", soft_wrap=True,
                      highlight=False)


def setup_logging(is_verbose: bool = False) -> None:
    """Route ``slmfactory.*`` log records to the console (INFO with -v, else WARNING); idempotent."""
    log = logging.getLogger("slmfactory")
    if is_verbose:
        log.setLevel(logging.INFO)  # else the level stays unset: the root logger's (WARNING unless configured)
    handler = next((h for h in log.handlers if isinstance(h, _ConsoleHandler)), None)
    if handler is None:
        handler = _ConsoleHandler()
        log.addHandler(handler)  # records still propagate: pytest's caplog and a user's root handler see them
    handler.setLevel(logging.INFO if is_verbose else logging.WARNING)


def print_summary(res: Any, title: str, recipe: str | None = None) -> None:
    """Counts, per-stage figures (when the runner gives them), every output with its size, the next commands."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("input items", str(res.inputs))
    t.add_row("good rows (manifest)", str(res.rows))
    t.add_row("rejected (errors)", str(res.errors))
    for stage, n in res.errors_by_stage.items():
        t.add_row(f"  rejected at {stage}", str(n))
    t.add_row("hours of audio", f"{res.hours:.3f}")
    t.add_row("shards run / skipped (resume)", f"{res.shards_run} / {res.shards_skipped}")
    t.add_row("wall time", f"{res.wall_seconds:.1f} s")
    for k, v in (res.extras or {}).items():
        if isinstance(v, (str, int, float)):
            t.add_row(k, str(v))
    console.print(t)
    _print_stages(field(res, "stages"))
    out = res.out_dir
    console.print("[bold]outputs[/]")
    for name, path, size in outputs(res):
        console.print(f"  {name + ('/' if path.is_dir() else ''):<16} {size:>10}  {path}", soft_wrap=True,
                      highlight=False)
    name = recipe or _recipe_name(out)
    console.print("[bold]next[/]")
    for cmd in next_commands(name, out):
        console.print(f"  {cmd}", soft_wrap=True, highlight=False, markup=False)


def _print_stages(stages: Any) -> None:
    """One line per stage: rows in/out, rejected, rows/s (the ``stages`` key of the runner's result)."""
    if not isinstance(stages, dict) or not stages:
        return
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for c in ("stage", "rows in", "rows out", "rejected", "busy s", "rows/s"):
        t.add_column(c, justify="left" if c == "stage" else "right")
    for name, s in stages.items():
        s = s if isinstance(s, dict) else {}
        t.add_row(str(name), *(_fmt(s.get(k)) for k in ("rows_in", "rows_out", "errors", "busy_s", "rows_per_s")))
    console.print(t)


def _fmt(v: Any) -> str:
    if not isinstance(v, float):
        return "" if v is None else str(v)
    return f"{v:.2g}" if abs(v) < 1 else (f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}")


def _recipe_name(out: Any) -> str:
    import json

    try:
        rec = json.loads((out / "run.json").read_text())["recipe"]
        return str(rec.get("name") if isinstance(rec, dict) else rec)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def _run(recipe: str, overrides: dict[str, Any], executor: str, address: Optional[str], title: str,
         force: bool = False, allow_code: Optional[list[str]] = None, max_rejected: Optional[float] = None):
    """Check the recipe, say what was decided for the user (notes, the executor), run it, summarize; exit 2
    on a recipe that cannot run, 3 when more than ``max_rejected`` (else the recipe's) of the rows was rejected."""
    from .executor_choice import choose_executor
    from .recipe import RecipeError, load_recipe
    from .runner import run_recipe

    setup_logging(verbose())
    try:
        rec = load_recipe(recipe, overrides, allow_code=allow_code)
        for note in rec.notes:
            console.print(f"[dim]note:[/] {note}", soft_wrap=True, highlight=False)
        executor, why = choose_executor(rec, executor, address)
        if why:
            console.print(f"[dim]{why}[/]", soft_wrap=True, highlight=False)
        res = run_recipe(rec, executor=executor, address=address, console=console, force=force)
    except (RecipeError, FileNotFoundError, NotADirectoryError) as e:
        _fail(str(e))
    print_summary(res, title, rec.name)
    warning = rejected_warning(res, rec.max_rejected if max_rejected is None else max_rejected)
    if warning:
        console.print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_TOO_MANY_REJECTED)
    return res
