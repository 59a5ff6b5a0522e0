"""What the console shows while a recipe runs: one progress display named after our stages, and Ray's own output
kept in ``OUT/logs/ray.log``.

Why: Ray's log lines were most of a run's console output (a ``core_worker.cc ... E`` line reads like a failure)
and its bars named internal functions (``MapBatches(run_step)``), while the shard bar sat at 0 until the end.
The runner feeds this display one record per finished shard (workers write shards, so that is when counts
exist): shards done, rows, errors so far, rows/s, and per stage its rows and busy rows/s. On a terminal it is a
live rich panel; elsewhere (CI logs) a few plain lines: a start line, one at each quarter or minute, a last one.
``SLMFACTORY_VERBOSE=1`` (the CLI's ``-v``) leaves Ray's output on the console.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

VERBOSE_ENV = "SLMFACTORY_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


@contextmanager
def ray_logs(folder: Path, active: bool = True) -> Iterator[TextIO]:
    """Send everything written to file descriptor 2 (Ray's C++ core worker, its Python loggers, worker logs the
    driver prints) to ``folder/ray.log`` while the block runs; yields a stream on the real stderr.

    Why the descriptor and not ``sys.stderr``: Ray's C++ code writes to fd 2 directly. Our own ``slmfactory.*``
    warnings still reach the terminal: through the CLI's console handler, or a temporary handler when none is
    set up. Exceptions raised inside the block print after it, on the real stderr.
    """
    if not active or verbose():
        yield sys.stderr
        return
    folder.mkdir(parents=True, exist_ok=True)
    log_file = open(folder / "ray.log", "ab")
    for s in (sys.stdout, sys.stderr):
        s.flush()
    saved = os.dup(2)
    term = os.fdopen(os.dup(saved), "w", buffering=1)
    ours = logging.getLogger("slmfactory")
    handler = None
    if not ours.hasHandlers():
        handler = logging.StreamHandler(term)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        ours.addHandler(handler)
    os.dup2(log_file.fileno(), 2)
    try:
        yield term
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        _session_note(log_file)
        os.dup2(saved, 2)
        os.close(saved)
        if handler is not None:
            ours.removeHandler(handler)
        term.close()
        log_file.close()


def _session_note(f: Any) -> None:
    """Where Ray keeps the rest (raylet, GCS and worker logs): one line at the end of each run's block."""
    try:
        ray = sys.modules.get("ray")  # not imported: nothing of Ray ran in this block
        node = ray._private.worker._global_node if ray else None  # private, but the one name of that folder
        where = node.get_logs_dir_path() if node is not None else "none in this process (a cluster: its head node)"
    except Exception:  # noqa: BLE001 - a note, never a failure
        where = "unknown"
    f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} Ray session logs: {where}\n".encode())
    f.flush()


class RunProgress:
    """Per-shard progress of one run; ``update`` takes the record a finished shard returns (executors.finish)."""

    def __init__(self, console: Any, name: str, stages: list[str], total: int, skipped: int = 0):
        self.console, self.name, self.total, self.skipped = console, name, total, skipped
        self.stages = {s: [0, 0, 0, 0.0] for s in stages}  # rows_in, rows_out, errors, busy_s
        self.done = self.rows = self.errors = 0
        self.t0 = self.last_line = time.time()
        self.next_mark = 0.25
        self.live: Any = None

    def __enter__(self) -> "RunProgress":
        if self.console is None or not self.total:
            return self
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        else:
            more = f" ({self.skipped} done already)" if self.skipped else ""
            self._line(f"{self.name}: {self.total} shard(s) to run{more}: {' > '.join(self.stages)}")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, result: dict[str, Any]) -> None:
        self.done += 1
        self.rows += int(result.get("rows", 0))
        self.errors += int(result.get("errors", 0))
        for stage, m in (result.get("stages") or {}).items():
            acc = self.stages.setdefault(stage, [0, 0, 0, 0.0])
            for i, v in enumerate(m):
                acc[i] += v
        if self.live is not None:
            self.live.refresh()
        elif self.console is not None and (self.done == self.total or self.done / self.total >= self.next_mark
                                           or time.time() - self.last_line >= 60):
            while self.next_mark <= self.done / self.total:
                self.next_mark += 0.25
            self._line(self.summary() + " | " + " · ".join(self.stage_texts()))

    def summary(self) -> str:
        rate = (self.rows + self.errors) / max(time.time() - self.t0, 1e-6)
        return (f"{self.name}: {self.done}/{self.total} shards · {self.rows} rows · {self.errors} errors · "
                f"{rate:.1f} rows/s")

    def stage_texts(self) -> list[str]:
        out = []
        for stage, (rin, rout, err, busy) in self.stages.items():
            rate = (f"{rin / busy:.0f}/s" if rin / busy >= 10 else f"{rin / busy:.2g}/s") if busy > 0 else "-"
            out.append(f"{stage} {int(rout)} rows {rate}" + (f" {int(err)} err" if err else ""))
        return out

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.last_line = time.time()

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        for col in ("stage", "rows in", "rows out", "errors", "rows/s (busy)"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        t.add_row(*(f"[dim]{c}[/]" for c in ("stage", "rows in", "rows out", "errors", "rows/s (busy)")))
        for stage, (rin, rout, err, busy) in self.stages.items():
            t.add_row(stage, str(int(rin)), str(int(rout)), str(int(err)), f"{rin / busy:.1f}" if busy > 0 else "-")
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=self.total, completed=self.done, width=40), f"{self.done}/{self.total} shards")
        return Group(self.summary(), bar, t)
