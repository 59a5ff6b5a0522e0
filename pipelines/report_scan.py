"""The statistics pass of ``slmfactory report``: one streaming read of the shards, only the needed columns.

Why a pass of its own: a run can hold millions of rows; every plot of the page is fed from one read that takes
a batch of rows at a time and keeps only running sums (unit-id counts, tokens per format, seconds per
speaker) and capped, evenly spaced samples of the columns drawn as histograms (:class:`Values`).
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# float columns that are facts of the audio, not scores: not worth a histogram of their own
NOT_SCORES = {"start", "duration", "unit_rate_hz"}
# string columns counted for the tables (speaker is summed in seconds instead)
COUNTED = ("source", "format", "task", "voice", "tokenizer", "asr_backend", "aligner")


class Values:
    """The values of one column for a histogram, at most ``cap`` of them kept (float32).

    Why: a run of ten million rows must not hold ten million floats per score column. When more than ``cap``
    are kept, every second one is dropped and from then on only every ``step``-th new value is kept: a
    deterministic sample spread evenly over the whole run. ``seen`` counts every finite value."""

    def __init__(self, cap: int = 1_000_000):
        self.parts: list[np.ndarray] = []
        self.kept = self.seen = 0
        self.step, self.cap = 1, cap

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)].astype(np.float32)
        first = (-self.seen) % self.step  # the first value whose index over the whole run is a multiple of step
        self.seen += v.size
        v = v[first::self.step]
        self.parts.append(v)
        self.kept += v.size
        while self.kept > self.cap:
            self.parts = [np.concatenate(self.parts)[::2]]
            self.kept, self.step = self.parts[0].size, self.step * 2

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def scan(files: list[str], batch_rows: int = 16_384) -> dict[str, Any]:
    """One pass over the shards, only the columns a plot or a table needs, a batch at a time."""
    out: dict[str, Any] = {"rows": 0, "seconds": 0.0, "durations": Values(), "scores": {}, "counts": {},
                           "speaker_seconds": Counter(), "unit_counts": None, "tokens_per_format": Counter(),
                           "rows_per_format": Counter(), "turns": Counter(), "columns": []}
    if not files:
        return out
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    out["columns"] = [n for n in schema.names if not n.startswith("_")]
    scores = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in NOT_SCORES
              and not f.name.startswith("_")]
    wanted = ["duration", "speaker", "units", "tokens", "messages", *COUNTED, *scores]
    counters = {c: Counter() for c in COUNTED if c in schema.names}
    score_values = {s: Values() for s in scores}
    units = np.zeros(0, dtype=np.int64)
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in wanted if c in pf.schema_arrow.names]
        for rb in pf.iter_batches(batch_size=batch_rows, columns=cols):
            t = pa.Table.from_batches([rb])
            out["rows"] += t.num_rows
            dur = t.column("duration").to_numpy(zero_copy_only=False).astype(np.float64) \
                if "duration" in t.column_names else np.full(t.num_rows, np.nan)
            out["durations"].add(dur)
            out["seconds"] += float(np.nansum(dur))
            for c, counter in counters.items():
                if c in t.column_names:
                    for vc in pc.value_counts(t.column(c)).to_pylist():
                        if vc["values"] is not None:
                            counter[str(vc["values"])] += vc["counts"]
            if "speaker" in t.column_names:
                by = pa.table({"s": t.column("speaker"), "d": np.nan_to_num(dur)}).group_by("s").aggregate(
                    [("d", "sum")]).to_pylist()
                for g in by:
                    if g["s"] is not None:
                        out["speaker_seconds"][str(g["s"])] += g["d_sum"]
            for s in scores:
                if s in t.column_names:
                    score_values[s].add(t.column(s).to_numpy(zero_copy_only=False))
            if "units" in t.column_names:
                flat = pc.list_flatten(t.column("units")).to_numpy(zero_copy_only=False)
                flat = flat[flat >= 0].astype(np.int64)
                if flat.size:
                    add = np.bincount(flat)
                    units = np.pad(units, (0, max(0, add.size - units.size)))
                    units[: add.size] += add
            if "tokens" in t.column_names:  # rows without tokens (chat rows, text-only rows) are not counted
                fmt = t.column("format") if "format" in t.column_names else pa.nulls(t.num_rows, pa.string())
                by = pa.table({"f": pc.fill_null(fmt, "all"), "n": pc.list_value_length(t.column("tokens"))})
                for g in by.group_by("f").aggregate([("n", "sum"), ("n", "count")]).to_pylist():
                    if g["n_count"]:
                        out["tokens_per_format"][str(g["f"])] += int(g["n_sum"])
                        out["rows_per_format"][str(g["f"])] += int(g["n_count"])
            if "messages" in t.column_names:
                for m in t.column("messages").to_pylist():
                    for msg in _messages(m):
                        out["turns"][str(msg.get("role"))] += 1
    out["scores"] = {s: v for s, v in score_values.items() if v.seen}
    out["counts"] = counters
    out["unit_counts"] = units if units.sum() else None
    return out


def _messages(m: Any) -> list[dict[str, Any]]:
    try:
        v = json.loads(m) if isinstance(m, str) else m
    except ValueError:
        return []
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []
