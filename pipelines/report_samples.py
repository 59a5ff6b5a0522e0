"""The sample rows of ``slmfactory report``: ~10 rows spread evenly over a manifest, with playable audio.

Why evenly spaced row numbers (not random, not the first ten): the same run always gives the same page, and the
rows come from the start, the middle and the end of the run (other shards, other speakers). Only the row
groups that hold a picked row are read, and only the columns the page shows, so a run of millions of rows
costs the same as a small one. Audio is the row's own segment (``start``/``duration`` of its source file),
decoded by ``manifests.audio`` to 16 kHz mono and embedded as a FLAC ``data:`` URI (at most ``MAX_SECONDS``),
so the page needs nothing but itself. A clip that cannot be read is shown as the reason, never a crash.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..manifests.audio import load_audio
from ..manifests.schema import TARGET_SAMPLE_RATE

MAX_SECONDS = 20.0  # longest clip per player (16 kHz FLAC is ~25 kB of base64 a second: 20 s is ~0.5 MB)
MAX_TURNS = 8  # chat turns shown per synthesized row
SHOWN = ["id", "audio_path", "start", "duration", "speaker", "text", "source", "units", "unit_rate_hz",
         "tokenizer", "words", "format", "tokens", "messages", "task", "voice", "asr_confidence",
         "dnsmos_ovrl", "chars_per_second", "audio", "audios"]


def sample_rows(files: list[str], out_dir: Path, n: int = 10) -> list[dict[str, Any]]:
    """``n`` rows at evenly spaced row numbers, each with ``clip`` (the audio player's source) and, for chat
    rows, ``turns`` (role, text, clip)."""
    if not files or n <= 0:
        return []
    groups = []  # (file, row group, first row number, rows)
    total = 0
    for f in files:
        md = pq.ParquetFile(f).metadata
        for g in range(md.num_row_groups):
            rows = md.row_group(g).num_rows
            groups.append((f, g, total, rows))
            total += rows
    if total == 0:
        return []
    picks = sorted({int(i) for i in np.linspace(0, total - 1, min(n, total)).round()})
    out, cache = [], {}
    for i in picks:
        f, g, first, _ = next(x for x in groups if x[2] <= i < x[2] + x[3])
        if (f, g) not in cache:
            pf = pq.ParquetFile(f)
            cache.clear()  # one row group in memory at a time
            cache[(f, g)] = pf.read_row_group(g, columns=[c for c in SHOWN if c in pf.schema_arrow.names])
        row = cache[(f, g)].slice(i - first, 1).to_pylist()[0]
        row["row_number"] = i
        out.append(_with_audio(row, out_dir))
    return out


def _with_audio(row: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Attach the players: one per spoken chat turn, else one for the row's own segment (``audio_path``, or
    the embedded ``audio`` of a Hugging Face export)."""
    msgs = _messages(row.get("messages"))
    if msgs is not None:
        row["turns"] = [{"role": str(m.get("role") or "?"), "text": _text(m), "clip": _turn_clip(m, row, out_dir)}
                        for m in msgs[:MAX_TURNS]]
        row["more_turns"] = max(0, len(msgs) - MAX_TURNS)
        if any(t["clip"] and t["clip"]["path"] == row.get("audio_path") for t in row["turns"]):
            return row  # the row's own audio is one of its turns: one player is enough
    if row.get("audio_path"):
        row["clip"] = clip(row["audio_path"], out_dir, row.get("start"), row.get("duration"))
    elif isinstance(row.get("audio"), dict) and row["audio"].get("bytes"):
        row["clip"] = clip(row["audio"]["bytes"], out_dir)
    return row


def _turn_clip(m: dict[str, Any], row: dict[str, Any], out_dir: Path) -> dict[str, Any] | None:
    a = m.get("audio")
    if isinstance(a, int) and not isinstance(a, bool):  # an index into the row's embedded `audios` (HF export)
        audios = row.get("audios") or []
        item = audios[a] if 0 <= a < len(audios) else None
        return clip(item["bytes"], out_dir) if isinstance(item, dict) and item.get("bytes") else None
    p = _audio_of(m)
    if p is None:
        return None
    if p == row.get("audio_path"):  # the row's own recording: play the row's segment of it
        return clip(p, out_dir, row.get("start"), row.get("duration"))
    return clip(p, out_dir)


def clip(src: str | bytes, out_dir: Path, start: float | None = None,
         duration: float | None = None) -> dict[str, Any]:
    """``{path, uri, seconds, cut}`` for a player of a file (``src`` a path, relative ones to ``out_dir``) or of
    embedded audio bytes; ``{path, error}`` when the audio cannot be read."""
    import soundfile as sf

    path = "(embedded)" if isinstance(src, (bytes, bytearray)) else str(src)
    want = MAX_SECONDS if duration is None else min(float(duration), MAX_SECONDS)
    try:
        if isinstance(src, (bytes, bytearray)):
            wav = _decode_bytes(bytes(src), float(start or 0.0), want)
        else:
            p = Path(src)
            if not p.is_absolute() and not p.exists() and (out_dir / p).exists():
                p = out_dir / p  # paths written relative to the run folder
            wav, _ = load_audio(str(p), float(start or 0.0), want)
        buf = io.BytesIO()
        sf.write(buf, np.clip(wav, -1.0, 1.0), TARGET_SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    except Exception as e:  # noqa: BLE001 - any unreadable clip becomes a note on the page
        return {"path": path, "error": f"{type(e).__name__}: {e}"[:300]}
    seconds = len(wav) / TARGET_SAMPLE_RATE
    return {"path": path, "seconds": seconds, "cut": duration is not None and float(duration) > MAX_SECONDS,
            "uri": "data:audio/flac;base64," + base64.b64encode(buf.getvalue()).decode("ascii")}


def _decode_bytes(data: bytes, start: float, seconds: float) -> np.ndarray:
    """Embedded audio (WAV/FLAC/OGG bytes) -> mono float32 at 16 kHz, ``[start, start + seconds)``."""
    import soundfile as sf
    import soxr

    wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    wav = wav[int(start * sr): int((start + seconds) * sr)].mean(axis=1)
    return soxr.resample(wav, sr, TARGET_SAMPLE_RATE) if sr != TARGET_SAMPLE_RATE else wav


def _messages(m: Any) -> list[dict[str, Any]] | None:
    if m is None:
        return None
    try:
        v = json.loads(m) if isinstance(m, str) else m
    except ValueError:
        return None
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else None


def _text(m: dict[str, Any]) -> str:
    """A turn's text: ``text``, or ``content`` as a string or as a list of ``{type: text, text}`` parts."""
    if isinstance(m.get("text"), str):
        return m["text"]
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return " ".join(str(x.get("text")) for x in c if isinstance(x, dict) and x.get("type") == "text")
    return ""


def _audio_of(m: dict[str, Any]) -> str | None:
    """A turn's audio file: ``audio`` (a path, or ``{path}``), or an audio part of a ``content`` list."""
    a = m.get("audio")
    if isinstance(a, dict):
        a = a.get("path")
    if isinstance(a, str) and a:
        return a
    for x in m.get("content") or [] if isinstance(m.get("content"), list) else []:
        if isinstance(x, dict) and x.get("type") == "audio":
            v = x.get("audio") or x.get("path")
            v = v.get("path") if isinstance(v, dict) else v
            if isinstance(v, str) and v:
                return v
    return None
