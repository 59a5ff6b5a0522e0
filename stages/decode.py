"""Decode stages: turn an audio reference into a mono 16 kHz waveform in the transient ``audio`` column.

``DecodeStage`` runs at ingest: it decodes every file once (which is what validates it: the sanity
bounds of :mod:`slmfactory.manifests.audio` reject absurd sample rates, channel counts, amplitudes and
files under 25 ms), records the source file's sample rate, channel count and duration, and hands the
waveform to segmentation.
Long files are not decoded whole: a file (or span) longer than ``stream_seconds`` is only probed (its
header is checked against the same sanity bounds) and flows on as a reference, ``audio_path`` + ``start`` +
``duration`` with no waveform; ``vad_segment`` streams it in windows (checking every sample as decoding
whole would) and every later stage loads only its own segment (``load_audio`` seeks). Why: a 2-hour 44.1 kHz
stereo MP3 decoded whole peaked at 5.9 GB in one worker and travelled through Ray blocks (docs/scale.md).
``LoadAudioStage`` re-loads the audio of existing segment rows (``start``/``duration``) when a recipe
starts from a written manifest instead of raw files.
"""
from __future__ import annotations

from typing import Any

from ..manifests.schema import AUDIO_COLUMN, TARGET_SAMPLE_RATE, seconds_problem
from ..manifests.audio import load_audio, probe
from .base import Row, Stage, reject


class DecodeStage(Stage):
    """Decode whole files (or the given ``start``/``duration`` window) and validate them."""

    name = "decode"

    def __init__(self, target_sample_rate: int = TARGET_SAMPLE_RATE, min_seconds: float = 0.05,
                 stream_seconds: float | None = 60.0):
        self.target_sr = int(target_sample_rate)
        self.min_seconds = float(min_seconds)
        # longer spans stay references (module docstring); None or 0 = always decode whole
        self.stream_seconds = float(stream_seconds) if stream_seconds else None

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[dict[str, Any]] = []
        for row in rows:
            out.append(self._one(dict(row)))
        return out

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        path = row.get("audio_path")
        if not path:  # text-only rows (instruction data) flow on without audio
            row[AUDIO_COLUMN] = None
            return row
        start = row.get("start") or 0.0
        try:  # load_audio checks start/duration (finite seconds in range) and the audio sanity bounds
            if self._long(path, start, row.get("duration"), row):
                return row
            wav, info = load_audio(path, start, row.get("duration"), self.target_sr)
        except Exception as e:  # noqa: BLE001 - every decoder failure becomes an error row
            return reject(row, self.name, str(e) if str(e).startswith(str(path)) else f"{path}: {e}")
        seconds = len(wav) / self.target_sr
        if seconds < self.min_seconds:
            return reject(row, self.name, f"{path}: only {seconds:.3f} s of audio (minimum {self.min_seconds} s)")
        row.update(start=float(start), duration=round(seconds, 6), sample_rate=info.sample_rate,
                   num_channels=info.num_channels)
        row[AUDIO_COLUMN] = wav
        return row


    def _long(self, path: str, start: float, duration: float | None, row: dict[str, Any]) -> bool:
        """True (and ``row`` filled from the header) when the span is too long to decode whole."""
        if not self.stream_seconds or seconds_problem("start", start) or \
                (duration is not None and (seconds_problem("duration", duration) or duration <= self.stream_seconds)):
            return False  # short, or a bad start/duration that load_audio names with its fix
        info = probe(path)  # header bounds: rate, channels, at least 25 ms (raises AudioError)
        span = info.duration - float(start) if duration is None else min(float(duration), info.duration - start)
        if span <= self.stream_seconds:
            return False
        row.update(start=float(start), duration=round(span, 6), sample_rate=info.sample_rate,
                   num_channels=info.num_channels)
        row[AUDIO_COLUMN] = None
        return True


class LoadAudioStage(DecodeStage):
    """Load each segment's audio window from a manifest row (same checks as decode)."""

    name = "load_audio"
