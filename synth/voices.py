"""Seeded voice choice per item, so a synthetic set is spoken by many voices, reproducibly.

Why a sampler: instruction data spoken by one voice teaches a model one voice. ``VoiceSampler`` spreads
items over voices (and espeak rate/pitch variants) by a seeded hash of the item id, so the choice is
the same on every worker, shard order and resume.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from .tts import TtsError


class VoiceSampler:
    """Seeded, order-independent choice of a voice per item (same id + seed -> same voice).

    ``rates``/``pitches`` (espeak only) add prosodic variants: a sampled voice becomes
    ``en-gb+f3@170,40``.
    """

    def __init__(self, voices: Sequence[str], seed: int = 0, rates: Sequence[int] | None = None,
                 pitches: Sequence[int] | None = None):
        if not voices:
            raise TtsError("the voice pool is empty: list voices in the recipe (tts.voices) or use the backend's")
        self.voices, self.seed = list(voices), int(seed)
        self.rates, self.pitches = list(rates or []), list(pitches or [])

    def _draw(self, key: str, salt: str, n: int) -> int:
        h = hashlib.sha1(f"{self.seed}|{salt}|{key}".encode("utf-8")).digest()
        return int.from_bytes(h[:8], "big") % n

    def pick(self, key: str, role: str = "") -> str:
        v = self.voices[self._draw(key, "voice" + role, len(self.voices))]
        if self.rates or self.pitches:
            r = self.rates[self._draw(key, "rate" + role, len(self.rates))] if self.rates else ""
            p = self.pitches[self._draw(key, "pitch" + role, len(self.pitches))] if self.pitches else ""
            v = f"{v.partition('@')[0]}@{r},{p}"
        return v
