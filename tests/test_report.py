"""`slmfactory report OUT`: one self-contained HTML page, rendered in headless Chromium.

The run folder is written directly (one Parquet shard through the schema's own ``table_from_rows``, an errors
shard, ``run.json``) around real espeak-ng speech with known word times: segments cut by ``start``/``duration``
from one long 22.05 kHz recording, chat rows whose turns are separate audio files, units, tokens, ASR and
DNSMOS columns. That exercises every section in a second, without running a pipeline (the demo reports on
real runs). Chromium is the Debian package (`apt-get install -y chromium`).
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

SENTENCES = ["the birch canoe slid on the smooth planks", "glue the sheet to the dark blue background",
             "a rod is used to catch pink salmon", "smoky fires lack flame and heat"]
SR = 22_050  # the source rate: the page's clips are resampled to 16 kHz mono


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, require_espeak) -> Path:
    from slmfactory.manifests import generate as g
    from slmfactory.manifests.schema import ERROR_SCHEMA, table_from_rows

    root = tmp_path_factory.mktemp("report")
    out, audio = root / "run", root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    utts = [g.words_with_silences(s.split(), g.VOICES[i % 2], sr=SR) for i, s in enumerate(SENTENCES)]
    long = np.concatenate([u.wav for u in utts])
    sf.write(audio / "long.flac", long, SR)
    rows = []
    for i, u in enumerate(utts * 3):  # 12 segments of the long file (the 4 utterances, thrice over rows)
        j = i % len(utts)
        start = sum(len(x.wav) for x in utts[:j]) / SR
        dur = len(u.wav) / SR
        units = rng.zipf(1.6, size=int(dur * 50)) % 100
        rows.append({"id": f"seg{i:02d}", "audio_path": str(audio / "long.flac"), "start": start, "duration": dur,
                     "sample_rate": SR, "num_channels": 1, "speaker": f"spk{j % 2}", "text": u.text,
                     "source": "test", "meta": "{}", "units": units.astype(np.int32), "unit_rate_hz": 50.0,
                     "tokenizer": "test", "asr_confidence": float(rng.uniform(0.4, 0.95)),
                     "dnsmos_ovrl": float(rng.uniform(2.5, 3.5)), "format": ["interleaved", "speech", "text"][i % 3],
                     "tokens": rng.integers(0, 500, size=40 + i).astype(np.int32),
                     "words": [{"word": w, "start": a, "end": b, "score": 1.0} for w, a, b in u.words]})
    for k in range(2):  # chat rows: a spoken question (its own file) and a written answer
        q = g.words_with_silences(SENTENCES[k].split()[:4], "en-us", sr=SR)
        sf.write(audio / f"turn{k}.wav", q.wav, SR)
        msgs = [{"role": "user", "text": q.text, "audio": str(audio / f"turn{k}.wav")},
                {"role": "assistant", "text": f"answer number {k}", "audio": None}]
        rows.append({"id": f"chat{k}", "audio_path": str(audio / f"turn{k}.wav"), "start": 0.0,
                     "duration": len(q.wav) / SR, "sample_rate": SR, "num_channels": 1, "speaker": None,
                     "text": None, "source": "synth", "meta": "{}", "messages": json.dumps(msgs),
                     "task": ["sqa", "instruct"][k], "voice": "en-us"})
    (out / "manifest").mkdir(parents=True)
    (out / "errors").mkdir()
    pq.write_table(table_from_rows(rows), out / "manifest" / "shard-00000.parquet")
    bad = [{"id": f"bad{i}", "input": f"/data/in/broken_{i}.flac", "stage": "decode", "source": "test", "meta": "{}",
            "reason": f"/data/in/broken_{i}.flac: cannot decode (Error {i}); re-encode it with ffmpeg"}
           for i in range(3)]
    pq.write_table(pa.Table.from_pylist(bad, schema=ERROR_SCHEMA), out / "errors" / "shard-00000.parquet")
    (out / "run.json").write_text(json.dumps({"recipe": {"name": "testrun", "stages": [
        {"uses": "asr", "params": {"min_confidence": 0.3}}]}, "counts": {"inputs": 17}, "wall_seconds": 1.0,
        "executor": "local"}))
    return out


def _audio_sources(page: str) -> list[tuple[str, float, bytes]]:
    """(row id, seconds the page claims, decoded bytes) of every <audio> element."""
    out = []
    for tag in re.findall(r"<audio\b[^>]*>", page):
        rid = re.search(r'data-id="([^"]*)"', tag).group(1)
        secs = float(re.search(r'data-seconds="([^"]*)"', tag).group(1))
        src = re.search(r'src="([^"]*)"', tag).group(1)
        assert src.startswith("data:audio/"), f"audio source is not inline: {src[:60]}"
        out.append((rid, secs, base64.b64decode(src.split(",", 1)[1])))
    return out


def test_report_renders_offline_with_plots_and_players(run_folder, tmp_path):
    from typer.testing import CliRunner

    from slmfactory.pipelines.cli import app
    from slmfactory.pipelines.report import data_files, write_report
    from slmfactory.pipelines.report_scan import Values, scan

    res = CliRunner().invoke(app, ["report", str(run_folder)])
    assert res.exit_code == 0, res.output
    path = run_folder / "report.html"
    page = path.read_text()
    # deterministic: the same run gives the same bytes
    again = write_report(run_folder, tmp_path / "again.html")
    assert again.read_bytes() == path.read_bytes()

    # self-contained: no URL, no script, no stylesheet or font to fetch
    assert not re.search(r"https?://|<script|<link\b|@import|url\(", page, re.I), "page references the network"
    for img in re.findall(r'<img\b[^>]*src="([^"]{0,30})', page):
        assert img.startswith("data:image/png;base64,")
    alts = " ".join(re.findall(r'alt="([^"]*)"', page))
    for plot in ("Segment durations", "per speaker", "Unit usage", "Tokens per sequence format",
                 "ASR confidence", "DNSMOS overall", "Rows per task"):
        assert plot in alts, f"plot {plot!r} missing (plots: {alts})"
    assert "broken_0.flac" in page and "3 rejected rows" in page  # error reasons name their input
    assert page.count('class="card"') == 10  # ~10 sample rows
    assert "answer number" in page and "glue" in page  # chat turns and word alignment text

    # the statistics behind the plots are the manifest's own numbers
    rows = {r["id"]: r for r in pq.read_table(run_folder / "manifest").to_pylist()}
    stats = scan(data_files(run_folder), batch_rows=5)  # several batches: the running sums must add up
    units = np.concatenate([r["units"] for r in rows.values() if r["units"]])
    assert np.array_equal(stats["unit_counts"], np.bincount(units))
    for fmt in ("interleaved", "speech", "text"):
        assert stats["tokens_per_format"][fmt] == sum(len(r["tokens"]) for r in rows.values() if r["format"] == fmt)
    assert stats["rows"] == len(rows) and abs(stats["seconds"] - sum(r["duration"] for r in rows.values())) < 1e-6
    sample = Values(cap=100)  # a capped column keeps an even, deterministic sample and counts every value
    for part in np.array_split(np.arange(1000.0), 7):
        sample.add(part)
    assert sample.seen == 1000 and 50 <= sample.values().size <= 100
    assert np.array_equal(sample.values(), np.arange(0, 1000, sample.step))

    # every player decodes, at 16 kHz mono, and lasts as long as its row (a segment or a chat turn)
    sources = _audio_sources(page)
    assert len(sources) >= 10
    for rid, secs, data in sources:
        wav, sr = sf.read(io.BytesIO(data))
        assert sr == 16_000 and wav.ndim == 1 and len(wav) > 0
        assert abs(len(wav) / sr - rows[rid]["duration"]) < 0.02, (rid, len(wav) / sr, rows[rid]["duration"])
        assert abs(secs - len(wav) / sr) < 0.01
        assert np.abs(wav).max() > 0.01, f"{rid}: clip is silent"

    # Chromium draws it: the screenshot is not blank and the plots' blue is on it
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: `apt-get install -y chromium` (the Debian package) renders the report")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",  # runs beside others safely
                    f"--screenshot={shot}", "--window-size=1200,3000", path.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1200)
    assert img.std() > 20, "screenshot is blank"
    top = img[:1500].reshape(-1, 3)
    assert len(np.unique(top, axis=0)) > 50, "too few colours: plots did not render"
    blue = np.all(np.abs(top.astype(int) - (59, 110, 168)) < 12, axis=1).sum()
    assert blue > 2000, f"only {blue} pixels of the plots' bar colour: plot images did not render"
