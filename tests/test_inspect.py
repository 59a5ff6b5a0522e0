"""`slmfactory inspect`: counts, hours, speakers, histogram, errors, and the registered column inspectors.

No audio or models needed: the manifests are tables written with schema.table_from_rows, with durations
drawn from a seeded generator so the expected figures are computed independently here.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from slmfactory.pipelines.inspect import EDGES, duration_bins, inspect_path
from slmfactory.manifests.schema import ERROR_SCHEMA, table_from_rows
from slmfactory.pipelines import registry


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text_only = i % 10 == 9
        rows.append({"id": f"r{seed}-{i}", "audio_path": None if text_only else f"/data/{i}.flac",
                     "start": None if text_only else 0.0,
                     "duration": None if text_only else round(rng.choice([0.5, 3.0, 12.0, 45.0, 4000.0]) * rng.random(), 3),
                     "speaker": f"s{rng.randrange(7)}", "text": None if i % 3 == 0 else "words",
                     "source": "a" if i % 2 else "b", "meta": "{}", "units": [i, i + 1]})
    return rows


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    (tmp_path / "manifest").mkdir()
    (tmp_path / "errors").mkdir()
    pq.write_table(table_from_rows(_rows(40, 1)), tmp_path / "manifest" / "shard-00000.parquet")
    pq.write_table(table_from_rows(_rows(25, 2)), tmp_path / "manifest" / "shard-00001.parquet")
    errs = [{"id": f"e{i}", "input": f"/x/{i}.wav", "stage": "decode" if i < 3 else "discover",
             "reason": "file is empty" if i < 3 else "transcript is not UTF-8", "source": "a", "meta": "{}"}
            for i in range(5)]
    pq.write_table(pa.Table.from_pylist(errs, schema=ERROR_SCHEMA), tmp_path / "errors" / "shard-00000.parquet")
    return tmp_path


def test_duration_bins_edges():
    counts = duration_bins([0.0, 0.99, 1.0, 4.99, 5.0, None, 1e9])
    assert counts[0] == 2 and counts[1] == 1 and counts[2] == 1 and counts[3] == 1 and counts[-1] == 1
    assert sum(counts) == 6 and len(counts) == len(EDGES) - 1


def test_inspect_summary_matches_the_rows(run_dir, monkeypatch):
    monkeypatch.setattr(registry, "INSPECTORS", {})
    rows = _rows(40, 1) + _rows(25, 2)
    durs = [r["duration"] for r in rows if r["duration"] is not None]
    console = Console(record=True, width=120)
    s = inspect_path(run_dir, console)
    assert s["rows"] == 65 and s["text_only"] == sum(r["audio_path"] is None for r in rows)
    assert s["with_text"] == sum(bool(r["text"]) for r in rows)
    assert s["hours"] == pytest.approx(sum(durs) / 3600)
    assert s["speakers"] == len({r["speaker"] for r in rows})
    assert s["sources"] == {"a": sum(r["source"] == "a" for r in rows), "b": sum(r["source"] == "b" for r in rows)}
    assert [c for _, c in s["histogram"]] == duration_bins(durs) and sum(c for _, c in s["histogram"]) == len(durs)
    assert s["min_s"] == min(durs) and s["max_s"] == max(durs)
    assert s["errors"] == {"rows": 5, "by_stage": {"decode": 3, "discover": 2},
                           "top_reasons": [("file is empty", 3), ("transcript is not UTF-8", 2)]}
    text = console.export_text()
    assert "rows" in text and f"{sum(durs) / 3600:.3f}" in text and "█" in text and "5 rejected rows" in text
    # a manifest folder and a single shard work too (the shard alone has its own counts)
    assert inspect_path(run_dir / "manifest", Console(file=None, record=True))["rows"] == 65
    assert inspect_path(run_dir / "manifest" / "shard-00001.parquet", Console(record=True))["rows"] == 25


def test_inspectors_run_when_their_column_is_present(run_dir, tmp_path, monkeypatch):
    mod = tmp_path / "fake_inspectors.py"
    mod.write_text("SEEN = []\n"
                   "def describe(table, console):\n"
                   "    SEEN.append((table.num_rows, sorted(table.column_names)))\n"
                   "    console.print('units inspector ran')\n"
                   "def broken(table, console):\n"
                   "    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "INSPECTORS", {"units": "fake_inspectors:describe", "tokens": "fake_inspectors:describe",
                                                 "meta": "fake_inspectors:broken"})
    console = Console(record=True, width=120)
    s = inspect_path(run_dir, console, max_rows=50)
    import fake_inspectors

    assert s["inspectors"] == ["units"]  # tokens absent: not called; meta's inspector failed: reported
    assert fake_inspectors.SEEN == [(50, sorted(["id", "audio_path", "start", "duration", "speaker", "text", "source",
                                                  "meta", "units"]))]
    text = console.export_text()
    assert "units inspector ran" in text and "failed: RuntimeError: boom" in text and "first 50 rows" in text
    sys.modules.pop("fake_inspectors", None)
