"""`slmfactory inspect` section for unit columns: vocabulary usage, units per second, dedup ratio.

Why these numbers: a collapsed vocabulary (few distinct units) or a units/second far from the frame rate
(e.g. 50 Hz HuBERT giving 12/s) are the usual signs of a wrong layer, a wrong k-means file or silent audio;
deduplicated 25 Hz units should land near 17-20 per second of speech (SpiRit-LM, LibriLight).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np


def unit_stats(table) -> dict[str, Any]:
    cols = table.column_names
    units = [u for u in table.column("units").to_pylist()] if "units" in cols else []
    durs = table.column("duration").to_pylist() if "duration" in cols else [None] * len(units)
    run_lens = table.column("unit_durations").to_pylist() if "unit_durations" in cols else [None] * len(units)
    counts: Counter[int] = Counter()
    n_units = n_frames = n_runs = 0
    seconds = 0.0
    for u, d, rl in zip(units, durs, run_lens):
        if not u:
            continue
        counts.update(u)
        n_units += len(u)
        if rl:  # already deduplicated: the runs are the units
            n_frames += int(sum(rl))
            n_runs += len(u)
        else:  # not deduplicated: count runs on the fly
            a = np.asarray(u)
            n_frames += len(a)
            n_runs += 1 + int((a[1:] != a[:-1]).sum())
        seconds += float(d or 0.0)
    total = sum(counts.values())
    entropy = -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0
    tokenizers = Counter(table.column("tokenizer").to_pylist()) if "tokenizer" in cols else Counter()
    rates = sorted({r for r in table.column("unit_rate_hz").to_pylist() if r}) if "unit_rate_hz" in cols else []
    return {
        "rows_with_units": sum(1 for u in units if u),
        "units": n_units,
        "distinct_units": len(counts),
        "max_unit_id": max(counts) if counts else None,
        "entropy_bits": round(entropy, 3),
        "units_per_second": round(n_units / seconds, 2) if seconds else None,
        "frames_per_second": round(n_frames / seconds, 2) if seconds else None,
        "dedup_ratio": round(n_runs / n_frames, 3) if n_frames else None,
        "unit_rate_hz": rates,
        "tokenizers": dict(tokenizers),
        "top_units": counts.most_common(5),
    }


def describe(table, console) -> dict[str, Any]:
    from rich.table import Table

    s = unit_stats(table)
    t = Table(title="speech units", show_header=True)
    t.add_column("statistic")
    t.add_column("value", justify="right")
    labels = {
        "rows_with_units": "rows with units", "units": "units (as stored)", "distinct_units": "vocabulary used",
        "max_unit_id": "largest unit id", "entropy_bits": "unit entropy (bits)",
        "units_per_second": "units / second", "frames_per_second": "frames / second (before dedup)",
        "dedup_ratio": "dedup ratio (runs / frames)", "unit_rate_hz": "frame rate (Hz)",
        "tokenizers": "tokenizer", "top_units": "most frequent units",
    }
    for k, label in labels.items():
        v = s[k]
        if isinstance(v, dict):
            v = ", ".join(f"{name} ({n})" for name, n in v.items())
        t.add_row(label, "-" if v is None or v == [] else str(v))
    if "codes" in table.column_names:
        codes = [c for c in table.column("codes").to_pylist() if c]
        if codes:
            t.add_row("codec codebooks", str(len(codes[0])))
            t.add_row("codec frames", str(sum(len(c[0]) for c in codes)))
    console.print(t)
    return s
