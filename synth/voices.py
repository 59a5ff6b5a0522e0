"""Seeded voice choice per item, so a synthetic set is spoken by many voices, reproducibly.

Why a sampler: instruction data spoken by one voice teaches a model one voice. ``VoiceSampler`` spreads
items over voices and per-row settings (espeak rate/pitch, Piper speed and noise) by a seeded hash of
the item id, so the choice is the same on every worker, shard order and resume.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from .tts import TtsError


class VoiceSampler:
    """Seeded, order-independent choice of a voice per item (same id + seed -> same voice and settings).

    ``variation`` maps an engine to ``{setting: [values]}``; a drawn voice of that engine gets one value
    of each: ``en-gb+f3@rate=170,pitch=40``, ``en_US-joe-medium@length_scale=1.1,noise_scale=0.5``.
    ``engine_of(voice)`` says which engine a voice belongs to (default: every voice is ``espeak``'s).
    ``rates``/``pitches`` are the short form of ``variation: {espeak: {rate: ..., pitch: ...}}``.
    """

    def __init__(self, voices: Sequence[str], seed: int = 0, rates: Sequence[int] | None = None,
                 pitches: Sequence[int] | None = None, variation: dict[str, dict[str, Sequence[Any]]] | None = None,
                 engine_of: Callable[[str], str] | None = None):
        if not voices:
            raise TtsError("the voice pool is empty: list voices in the recipe (tts.voices) or use the backend's")
        self.voices, self.seed = list(voices), int(seed)
        self.variation = {eng: {k: list(v) for k, v in (keys or {}).items() if v} for eng, keys in (variation or {}).items()}
        short = {k: list(v) for k, v in (("rate", rates), ("pitch", pitches)) if v}
        if short:
            self.variation["espeak"] = {**short, **self.variation.get("espeak", {})}
        self.engine_of = engine_of or (lambda v: "espeak")

    def _draw(self, key: str, salt: str, n: int) -> int:
        h = hashlib.sha1(f"{self.seed}|{salt}|{key}".encode("utf-8")).digest()
        return int.from_bytes(h[:8], "big") % n

    def pick(self, key: str, role: str = "") -> str:
        v = self.voices[self._draw(key, "voice" + role, len(self.voices))]
        keys = self.variation.get(self.engine_of(v))
        if keys:
            drawn = [f"{k}={vals[self._draw(key, k + role, len(vals))]}" for k, vals in keys.items()]
            v = f"{v.partition('@')[0]}@{','.join(drawn)}"
        return v
