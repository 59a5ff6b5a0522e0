"""``slmfactory report OUT``: one self-contained HTML data card of a run folder, to look at the data.

Why: counts in a terminal do not show a collapsed unit vocabulary, a quality score that sank, a voice that
speaks every row or a misaligned word; a histogram and ten rows you can listen to do. The page is one file
with no network (plots as PNG ``data:`` URIs, audio as 16 kHz mono FLAC ``data:`` URIs, inline CSS, no
scripts), so it can be mailed, attached to a dataset card or opened on an air-gapped cluster.

Fast and small on a large run: the statistics are one streaming pass over the Parquet shards reading only
the columns a plot needs (``report_scan``); the sample rows are ~10 rows spread evenly over the manifest, read from
their row groups only (``report_samples``), so the page size does not grow with the run.
:func:`write_report` is the entry point (the CLI verb and the demo call it).
"""
from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..manifests.run_manifest import iter_rows, manifest_files
from . import report_html, report_plots
from .report_samples import sample_rows
from .report_scan import scan

REPORT_NAME = "report.html"
SCORE_LABELS = {
    "asr_confidence": "ASR confidence", "asr_no_speech_prob": "Whisper no-speech probability",
    "dnsmos_ovrl": "DNSMOS overall (1-5)", "dnsmos_sig": "DNSMOS signal (1-5)",
    "dnsmos_bak": "DNSMOS background (1-5)", "dnsmos_p808": "DNSMOS P.808 MOS (1-5)",
    "chars_per_second": "speaking rate (characters / s)",
}
# score column -> recipe stage parameters that bound it (drawn on its histogram when the recipe sets them)
THRESHOLDS = {"asr_confidence": ("min_confidence",), "asr_no_speech_prob": ("max_no_speech_prob",),
              "dnsmos_ovrl": ("min_ovrl",), "dnsmos_sig": ("min_sig",), "dnsmos_bak": ("min_bak",),
              "dnsmos_p808": ("min_p808",), "chars_per_second": ("min_cps", "max_cps")}


def write_report(out_dir: Path, dest: Path | None = None, samples: int = 10) -> Path:
    """Write the report of the run folder ``out_dir`` to ``dest`` (default ``OUT/report.html``); returns it."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir}: not a folder; give a run folder (the -o/out= of a run)")
    dest = Path(dest) if dest is not None else out_dir / REPORT_NAME
    files = data_files(out_dir)
    errors_dir = out_dir / "errors"
    if not files and not errors_dir.is_dir():
        raise FileNotFoundError(f"{out_dir}: no manifest/ and no errors/ shards; give the output folder of a "
                                f"`slmfactory run` or `ingest` (it holds manifest/, errors/ and run.json) or a "
                                f"Parquet export (data/*.parquet)")
    stats = scan(files)
    run = _json(out_dir / "run.json")
    where = out_dir.resolve()
    title = f"{where.parent.name}/{where.name}" if (out_dir / "data").is_dir() else where.name  # an export: hf/
    data = {"title": title, "path": str(where), "run": run, "stats": stats,
            "plots": plots(stats, run), "packed": packed_info(out_dir),
            "errors": error_summary(errors_dir), "samples": sample_rows(files, out_dir, samples)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(report_html.page(data), encoding="utf-8")
    tmp.replace(dest)
    return dest


def data_files(out_dir: Path) -> list[str]:
    """The rows to describe: a run's manifest shards, else a Parquet export's (``data/**/*.parquet``, the
    Hugging Face layout, audio embedded); ``[]`` when there are none (a run that rejected every row)."""
    try:
        return manifest_files(out_dir)
    except FileNotFoundError:
        return sorted(str(p) for p in (out_dir / "data").glob("**/*.parquet")) if (out_dir / "data").is_dir() else []


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stage_params(run: dict[str, Any] | None) -> dict[str, Any]:
    """Every stage parameter the run's recipe set (name -> value; the names THRESHOLDS uses are unique)."""
    out: dict[str, Any] = {}
    for st in ((run or {}).get("recipe") or {}).get("stages") or []:
        if isinstance(st, dict) and isinstance(st.get("params"), dict):
            out.update(st["params"])
    return out


def plots(s: dict[str, Any], run: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """``(caption, data URI)`` for each plot the run's columns allow, in reading order; recipe thresholds
    (``run.json``) are drawn on the score histograms they bound."""
    P = report_plots
    params = _stage_params(run)
    out: list[tuple[str, str]] = []
    if s["durations"].seen:
        out.append(("Segment durations: where most rows lie, and outliers at either end.",
                    P.histogram(s["durations"].values(), "segment duration", "seconds", n=s["durations"].seen)))
    spk = s["speaker_seconds"]
    if spk:
        if len(spk) <= 30:
            top = sorted(spk.items(), key=lambda kv: (-kv[1], kv[0]))
            out.append(("Minutes of speech per speaker.", P.bars([k for k, _ in top], [v / 60 for _, v in top],
                                                                  f"speakers ({len(spk)})", "minutes")))
        else:
            out.append(("Minutes of speech per speaker: a long tail of tiny speakers, or one speaker holding "
                        "most of the data, shows here.",
                        P.histogram(np.array(list(spk.values())) / 60, "minutes per speaker", "minutes",
                                    log_y=True, ylabel="speakers")))
    if s["unit_counts"] is not None:
        out.append(("Unit usage, rank against frequency: a healthy vocabulary bends gently; a cliff means "
                    "few units do all the work (wrong layer, k-means or silent audio).", P.zipf(s["unit_counts"])))
    if s["tokens_per_format"]:
        k = sorted(s["tokens_per_format"])
        out.append(("Tokens per sequence format.", P.bars(k, [s["tokens_per_format"][f] for f in k],
                                                          "tokens per format", "tokens")))
    for col in sorted(s["scores"], key=lambda c: (c not in SCORE_LABELS, list(SCORE_LABELS).index(c)
                                                  if c in SCORE_LABELS else 0, c)):
        label = SCORE_LABELS.get(col, col)
        marks = [(float(params[k]), f"{k} {params[k]:g}") for k in THRESHOLDS.get(col, ())
                 if isinstance(params.get(k), (int, float)) and not isinstance(params.get(k), bool)]
        why = " Red lines: the recipe's bounds (rows beyond them are in Errors)." if marks else ""
        out.append((f"{html.escape(label)} (column <code>{html.escape(col)}</code>).{why}",
                    P.histogram(s["scores"][col].values(), label, col, marks=marks, n=s["scores"][col].seen)))
    for col in ("task",):  # voices (long parametric names) and a single task are in the counts tables
        c = s["counts"].get(col)
        if c and len(c) > 1:
            top = c.most_common(30)
            out.append((f"Rows per {col}.", P.bars([k for k, _ in top], [v for _, v in top], f"rows per {col}",
                                                   "rows")))
    return out


def packed_info(out_dir: Path) -> dict[str, Any] | None:
    """``OUT/packed/dataset_info.json`` (the packed training blocks), when the run packed its output."""
    return _json(out_dir / "packed" / "dataset_info.json")


def error_summary(errors_dir: Path, top: int = 12) -> dict[str, Any] | None:
    """Rejected rows per stage, and the commonest reasons with one input each shows.

    Reasons name their file, so they are grouped by the reason with the input's name taken out."""
    files = sorted(str(p) for p in errors_dir.glob("*.parquet")) if errors_dir.is_dir() else []
    if not files:
        return None
    by_stage: Counter[str] = Counter()
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in iter_rows(files, ["input", "stage", "reason"]):
        stage, reason, inp = str(r.get("stage")), str(r.get("reason") or ""), str(r.get("input") or "")
        by_stage[stage] += 1
        key = (stage, _template(reason, inp))
        g = groups.setdefault(key, [0, inp, reason])
        g[0] += 1
    worst = sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
    return {"rows": sum(by_stage.values()), "by_stage": by_stage.most_common(),
            "reasons": [{"stage": k[0], "count": g[0], "input": g[1], "reason": g[2]} for k, g in worst],
            "groups": len(groups)}


def _template(reason: str, inp: str) -> str:
    import re

    r = reason.replace(inp, "<input>") if inp else reason
    r = re.sub(r"(/[^\s:;,'\"]+)+", "<path>", r)
    return re.sub(r"\d+(\.\d+)?", "#", r)[:200]
