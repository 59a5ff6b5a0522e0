"""Shared by every bench script: the median wall time of repeated calls (medians resist outliers).

Bench scripts import it as ``from timing import timed`` (a script's own folder is first on sys.path).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(median seconds over ``repeats`` calls, the last call's result)."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    return timed(fn, repeats)[0]
