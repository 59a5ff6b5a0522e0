"""The TTS backend interface, ``synthesize(texts, voices) -> waveforms``, and the factory by name.

Why one interface: recipes pick an engine by name (``espeak`` offline default, ``coqui`` VITS/XTTS from a
local model folder, ``piper`` ONNX voice from a local file; one module each, found through
``TTS_BACKENDS`` in manifests/registry.py) and everything downstream (FLAC writing, gates, export) sees
float32 mono arrays at ``backend.sample_rate``.

Voice strings are engine-specific: espeak ``en-us+f3`` with optional ``@rate,pitch`` (``en-gb+m3@150,40``);
coqui a speaker name (VITS multi-speaker) or a reference clip path (XTTS cloning); piper a speaker id.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..manifests.registry import TTS_BACKENDS
from .backends import build

TTS_INSTALL = "pip install 'slmfactory[tts]'"


class TtsError(RuntimeError):
    """A TTS backend that cannot run, with the fix."""


class TtsBackend:
    """Family base of the TTS backends: subclasses set ``name`` (what recipes write) and ``sample_rate``."""

    name: str
    sample_rate: int

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        """One float32 mono waveform at ``sample_rate`` per (text, voice)."""
        raise NotImplementedError

    def voices(self) -> list[str]:
        """The voices this backend offers (what the voice sampler draws from by default)."""
        raise NotImplementedError


def make_tts(backend: str = "espeak", **params: Any) -> TtsBackend:
    """Build a backend by name; unknown names fail with the closest match and the list of known ones."""
    return build(TTS_BACKENDS, backend, TtsError, params)


def check_lengths(texts: Sequence[str], voices: Sequence[str]) -> None:
    if len(texts) != len(voices):
        raise TtsError(f"synthesize got {len(texts)} texts but {len(voices)} voices; give one voice per text")
