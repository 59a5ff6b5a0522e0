"""Decode stages: turn an audio reference into a mono 16 kHz waveform in the transient ``audio`` column.

``DecodeStage`` runs at ingest: it decodes every file once (which is what validates it: the sanity
bounds of :mod:`slmfactory.manifests.audio` reject absurd sample rates, channel counts, amplitudes and
files under 25 ms), records the source file's sample rate, channel count and duration, and hands the
waveform to segmentation.
``LoadAudioStage`` re-loads the audio of existing segment rows (``start``/``duration``) when a recipe
starts from a written manifest instead of raw files.
"""
from __future__ import annotations

from typing import Any

from ..manifests.schema import AUDIO_COLUMN, TARGET_SAMPLE_RATE
from ..manifests.audio import load_audio
from .base import Row, Stage, reject


class DecodeStage(Stage):
    """Decode whole files (or the given ``start``/``duration`` window) and validate them."""

    name = "decode"

    def __init__(self, target_sample_rate: int = TARGET_SAMPLE_RATE, min_seconds: float = 0.05):
        self.target_sr = int(target_sample_rate)
        self.min_seconds = float(min_seconds)

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


class LoadAudioStage(DecodeStage):
    """Load each segment's audio window from a manifest row (same checks as decode)."""

    name = "load_audio"
