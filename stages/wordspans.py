"""Word times -> unit indices: which speech units belong to which word.

Why: interleaving swaps a run of words for the units spoken over the same time. Units come at a fixed
rate (``unit_rate_hz``); when they were deduplicated each unit stands for ``unit_durations[i]`` frames, so a
time maps to a unit index by bisecting the cumulative durations (as slamkit does).

The spans *partition* the units: word ``k`` owns ``[b_k, b_{k+1})`` where ``b_k`` is the unit at the word's
start, ``b_0 = 0`` and ``b_N = len(units)``. Pauses go with the word before them, so concatenating the
speech spans of consecutive words gives back exactly the units of that stretch, and all spans together
give back every unit.
"""
from __future__ import annotations

import bisect
from itertools import accumulate
from typing import Any, Sequence


def unit_index_at(t: float, rate_hz: float, cum_ends: Sequence[int]) -> int:
    """Index of the unit covering time ``t`` (seconds); clamps to ``[0, len]``."""
    frame = int(t * rate_hz + 1e-6)
    return min(bisect.bisect_right(cum_ends, frame), len(cum_ends))


def word_unit_spans(words: Sequence[dict[str, Any]], n_units: int, rate_hz: float,
                    durations: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """``[(first, end_exclusive)]`` per word; spans are contiguous, non-decreasing and cover all units."""
    if rate_hz is None or rate_hz <= 0:
        raise ValueError(f"unit_rate_hz must be positive, got {rate_hz!r}")
    if durations is not None and len(durations) != n_units:
        raise ValueError(f"unit_durations has {len(durations)} entries for {n_units} units")
    cum = list(accumulate(int(d) for d in durations)) if durations is not None else list(range(1, n_units + 1))
    if not words:
        return []
    bounds = [0]
    for w in list(words)[1:]:
        bounds.append(max(bounds[-1], unit_index_at(float(w["start"]), rate_hz, cum)))
    bounds.append(n_units)
    bounds = [min(b, n_units) for b in bounds]
    return [(bounds[i], bounds[i + 1]) for i in range(len(words))]
