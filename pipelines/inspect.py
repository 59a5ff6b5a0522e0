"""``slmfactory inspect PATH``: what is in a manifest, at a glance, in the terminal.

Counts, hours, speakers, sources, a duration histogram and the errors table by stage, computed in one
streaming pass over the Parquet shards (a batch at a time, histogram binned on the fly, so a manifest of
millions of rows is fine). Then each column inspector named in ``pipelines/registry.py`` ``INSPECTORS``
runs when its column is present (units, tokens, messages...), on the first ``max_rows`` rows.
"""
from __future__ import annotations

import glob
import importlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from ..manifests.export import iter_rows, manifest_files

# Segment-length bins in seconds: fine where speech segments live, coarse for whole files.
EDGES = [0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 300.0, 1800.0, math.inf]
BAR = 40


def duration_bins(durations: list[float | None]) -> list[int]:
    """Counts per ``EDGES`` bin (``[lo, hi)``); None durations are not counted here."""
    counts = [0] * (len(EDGES) - 1)
    for d in durations:
        if d is None:
            continue
        for i in range(len(EDGES) - 1):
            if d < EDGES[i + 1]:
                counts[i] += 1
                break
    return counts


def _label(i: int) -> str:
    lo, hi = EDGES[i], EDGES[i + 1]
    f = lambda x: f"{x:g}s" if x < 60 else f"{x / 60:g}min"  # noqa: E731
    return f">= {f(lo)}" if math.isinf(hi) else f"{f(lo)} - {f(hi)}"


def summarize(files: list[str]) -> dict[str, Any]:
    """Counts, hours, speakers, sources, duration bins: one lazy polars scan over every shard (only these five
    columns are read, aggregated in polars' streaming engine: millions of rows never become Python objects)."""
    import polars as pl

    cols = ["audio_path", "duration", "speaker", "source", "text"]
    lf = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore",
                         schema={"audio_path": pl.String, "duration": pl.Float64, "speaker": pl.String,
                                 "source": pl.String, "text": pl.String}).select(cols)
    d = pl.col("duration")
    agg = lf.select(
        rows=pl.len(), with_audio=pl.col("audio_path").is_not_null().sum(),
        with_text=(pl.col("text").is_not_null() & (pl.col("text") != "")).sum(),
        no_duration=(d.is_null() & pl.col("audio_path").is_not_null()).sum(), n_dur=d.count(),
        seconds=d.sum(), min_s=d.min(), max_s=d.max(), speakers=pl.col("speaker").drop_nulls().n_unique(),
    ).collect(engine="streaming").row(0, named=True)
    sources = lf.group_by(pl.col("source").cast(pl.String).fill_null("None")).len().collect(engine="streaming")
    cuts = lf.select(d.drop_nulls().cut(EDGES[1:-1], left_closed=True, labels=[str(i) for i in range(len(EDGES) - 1)])
                     .value_counts()).unnest("duration").collect(engine="streaming")
    bins = [0] * (len(EDGES) - 1)
    for label, count in cuts.iter_rows():
        bins[int(label)] = int(count)
    rows, n_dur, seconds = int(agg["rows"]), int(agg["n_dur"]), float(agg["seconds"] or 0.0)
    return {"rows": rows, "with_audio": int(agg["with_audio"]), "text_only": rows - int(agg["with_audio"]),
            "with_text": int(agg["with_text"]), "hours": seconds / 3600.0, "min_s": agg["min_s"],
            "max_s": agg["max_s"] if n_dur else None, "mean_s": seconds / n_dur if n_dur else None,
            "no_duration": int(agg["no_duration"]), "speakers": int(agg["speakers"]),
            "sources": dict(sorted(sources.iter_rows())), "histogram": [(_label(i), c) for i, c in enumerate(bins)]}


def errors_summary(path: str | Path, files: list[str]) -> dict[str, Any] | None:
    """Rejected rows by stage and the most common reasons, when the run folder has ``errors/``."""
    p = Path(path)
    cands = [p / "errors", Path(files[0]).parent.parent / "errors"] if p.is_dir() else []
    err_dir = next((c for c in cands if c.is_dir()), None)
    if err_dir is None:
        return None
    efiles = sorted(glob.glob(str(err_dir / "*.parquet")))
    by_stage: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for r in iter_rows(efiles, ["stage", "reason"]):
        by_stage[str(r.get("stage"))] += 1
        reasons[str(r.get("reason"))[:160]] += 1
    return {"rows": sum(by_stage.values()), "by_stage": dict(sorted(by_stage.items())),
            "top_reasons": reasons.most_common(5)}


def inspect_path(path: str | Path, console: Console | None = None, max_rows: int = 100_000) -> dict[str, Any]:
    """Print the summary of the manifest at ``path`` (run folder, manifest folder or Parquet file)."""
    console = console or Console()
    files = manifest_files(path)
    s = summarize(files)
    s["errors"] = errors_summary(path, files)
    _print_summary(console, path, s)
    s["inspectors"] = run_inspectors(files, console, max_rows)
    return s


def _print_summary(console: Console, path: str | Path, s: dict[str, Any]) -> None:
    t = Table(title=f"manifest: {path}", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("rows", f"{s['rows']:,}")
    t.add_row("rows with audio / text-only", f"{s['with_audio']:,} / {s['text_only']:,}")
    t.add_row("rows with text", f"{s['with_text']:,}")
    t.add_row("hours", f"{s['hours']:.3f}")
    if s["min_s"] is not None:
        t.add_row("segment seconds min / mean / max", f"{s['min_s']:.2f} / {s['mean_s']:.2f} / {s['max_s']:.2f}")
    if s["no_duration"]:
        t.add_row("rows with audio but no duration", f"{s['no_duration']:,}")
    t.add_row("speakers", f"{s['speakers']:,}")
    t.add_row("sources", ", ".join(f"{k} ({v:,})" for k, v in s["sources"].items()))
    console.print(t)
    h = Table(title="segment durations")
    h.add_column("seconds")
    h.add_column("rows", justify="right")
    h.add_column("")
    top = max((c for _, c in s["histogram"]), default=0) or 1
    for label, c in s["histogram"]:
        h.add_row(label, f"{c:,}", "█" * int(round(BAR * c / top)))
    console.print(h)
    e = s.get("errors")
    if e:
        console.print(f"errors: {e['rows']:,} rejected rows (OUT/errors)", highlight=False)
        et = Table()
        et.add_column("stage")
        et.add_column("rows", justify="right")
        for k, v in e["by_stage"].items():
            et.add_row(k, f"{v:,}")
        console.print(et)
        for reason, n in e["top_reasons"]:
            console.print(f"  {n:>6,} x {reason}", markup=False, highlight=False)


def run_inspectors(files: list[str], console: Console, max_rows: int) -> list[str]:
    """Call ``describe(table, console)`` of each registered inspector whose column is present."""
    from .registry import INSPECTORS

    names = set(pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive").names)
    wanted = [(col, target) for col, target in INSPECTORS.items() if col in names]
    if not wanted:
        return []
    table = _head(files, max_rows)
    # inspectors that need the run's context (run.json, tokenizers) find the shard path here
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"path": files[0].encode()})
    if table.num_rows < sum(pq.ParquetFile(f).metadata.num_rows for f in files):
        console.print(f"(column inspectors look at the first {table.num_rows:,} rows)")
    ran = []
    for col, target in wanted:
        mod, fn = target.split(":", 1)
        try:
            getattr(importlib.import_module(mod), fn)(table, console)
            ran.append(col)
        except Exception as e:  # noqa: BLE001 - one broken inspector must not hide the others
            console.print(f"[yellow]inspector for column {col!r} ({target}) failed: {type(e).__name__}: {e}[/]")
    return ran


def _head(files: list[str], max_rows: int) -> pa.Table:
    parts, n = [], 0
    for f in files:
        if n >= max_rows:
            break
        t = pq.read_table(f)
        parts.append(t.slice(0, max_rows - n))
        n += parts[-1].num_rows
    return pa.concat_tables(parts, promote_options="permissive")
