"""ASR for rows without a transcript (LibriLight, podcasts): fills ``text`` only where it is null.

Backends derive from :class:`AsrBackend` (``transcribe(wav) -> (text, confidence, words or None)``) and are
registered by name in ``ASR_BACKENDS`` (``manifests/registry.py``):

* ``pocketsphinx`` (default, offline), ``stages/asr_sphinx.py``: good enough to align and interleave, not
  to train ASR on.
* ``whisper`` (openai-whisper with a local checkpoint), ``stages/asr_whisper.py``: word timestamps become
  the ``words`` column (the ``align`` stage keeps them).

Adds ``asr_backend`` and ``asr_confidence`` to transcribed rows; rows under ``min_confidence`` or with an
empty transcript go to ``errors``. Rows that already have text pass through untouched.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..manifests.audio import load_audio
from ..manifests.registry import ASR_BACKENDS
from .base import Row, Stage, reject


class AsrBackend:
    """Base of every ASR backend: a subclass sets ``name`` (its registry name) and ``transcribe``."""

    name: str

    def transcribe(self, wav: np.ndarray) -> tuple[str, float, list[dict] | None]:
        """16 kHz mono float32 -> (text, confidence in [0, 1], word dicts {word, start, end, score} or None)."""
        raise NotImplementedError


class AsrStage(Stage):
    """Transcribes rows whose ``text`` is null; adds ``asr_backend``, ``asr_confidence`` (and ``words`` from Whisper)."""

    name = "asr"

    def __init__(self, backend: str = "pocketsphinx", min_confidence: float = 0.3, model: Any = None, **backend_params: Any):
        if model is not None and hasattr(model, "transcribe") and hasattr(model, "name"):
            self.backend = model  # a ready backend object
        else:
            self.backend = ASR_BACKENDS.load(backend)(**({"model": model} if model is not None else {}), **backend_params)
        self.min_confidence = float(min_confidence)

    def process(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            if row.get("text") is not None and str(row["text"]).strip():
                continue
            where = row.get("audio_path") or row.get("id")
            wav = row.get("audio")
            if wav is None:
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            text, conf, words = self.backend.transcribe(np.asarray(wav, dtype=np.float32))
            row["asr_backend"] = self.backend.name
            row["asr_confidence"] = round(conf, 4)
            if not text:
                reject(row, self.name, f"{where}: ASR ({self.backend.name}) heard no words; the segment may be "
                       f"silence or music; check VAD settings")
                continue
            row["text"] = text
            if words:
                row["words"] = words
                row["aligner"] = self.backend.name
            if conf < self.min_confidence:
                reject(row, self.name, f"{where}: ASR confidence {conf:.2f} < min_confidence {self.min_confidence}; "
                       f"the transcript {text[:40]!r} is unreliable (noisy or non-English audio?); lower "
                       f"min_confidence or use a stronger backend")
        return rows
