"""Console output shared by the CLI verbs and the demo: errors, the run summary, running a recipe.

Why apart from ``cli.py``: the verb modules (``cli_*.py``) and the demo use these helpers; keeping them
here means none of them imports ``cli.py``, which imports all of them (no cycle).
"""
from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
FORCE_HELP = "run in an output folder that holds another recipe's output (it is emptied first)"
ALLOW_CODE_HELP = ("allow this module:Name (a stage class or hook function that is not registered) to run; "
                   "repeatable. Only for code you trust: see the README 'Trust model'")
EXECUTOR_HELP = "ray (embedded local Ray, or the cluster in RAY_ADDRESS / --address) or local (one process, for debugging)"


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)
    raise typer.Exit(code)


def print_summary(res: Any, title: str) -> None:
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
    console.print(f"outputs: [bold]{res.out_dir}/manifest[/] (good rows), [bold]{res.out_dir}/errors[/] "
                  f"(rejected, with stage and reason), {res.out_dir}/run.json")


def _run(recipe: str, overrides: dict[str, Any], executor: str, address: Optional[str], title: str,
         force: bool = False, allow_code: Optional[list[str]] = None):
    from .recipe import RecipeError
    from .runner import run_recipe

    try:
        res = run_recipe(recipe, overrides, executor=executor, address=address, console=console, force=force,
                         allow_code=allow_code)
    except (RecipeError, FileNotFoundError, NotADirectoryError) as e:
        _fail(str(e))
    print_summary(res, title)
    return res
