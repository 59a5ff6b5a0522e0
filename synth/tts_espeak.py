"""The ``espeak`` TTS backend: espeak-ng (through the shared wrapper ``manifests/espeak.py``), offline.

Why these voices: ~30 English voice/variant combinations plus sampled rate and pitch give cheap speaker
variety with no model. They pass the opt-in alignment gate, but Whisper tiny.en mishears most of their
clips (docs/synth.md), so the recipes' default pool is the Piper voice; add them with ``espeak:`` voices.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..manifests import espeak
from .tts import TtsBackend, TtsError, check_lengths, split_variant

# espeak-ng English voices x variants (the alignment gate passes them; Whisper tiny.en mostly does not).
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland"]
ESPEAK_VARIANTS = ["", "+f2", "+f3", "+f4", "+m3", "+m7"]


@dataclass(frozen=True)
class EspeakVoice:
    name: str
    rate: int | None = None  # words per minute
    pitch: int | None = None  # 0..99

    @classmethod
    def parse(cls, spec: str) -> "EspeakVoice":
        """``name``, ``name@rate,pitch`` or ``name@rate=160,pitch=40`` (what the voice sampler writes)."""
        try:
            name, kv = split_variant(spec, EspeakTts.variant_keys)
            return cls(name, int(kv["rate"]) if "rate" in kv else None, int(kv["pitch"]) if "pitch" in kv else None)
        except (ValueError, TtsError) as e:
            raise TtsError(f"voice {spec!r}: expected 'name@rate,pitch' with integers, "
                           f"e.g. 'en-us+f3@160,50' or 'en-us+f3@rate=160,pitch=50'") from e


class EspeakTts(TtsBackend):
    """espeak-ng through the shared stdin wrapper: offline, ~100 voice/variant combinations, rate and pitch.

    ``workers`` > 1 runs several espeak-ng processes at once (that is what "batched" means for a
    formant synthesizer: there is no model to batch, only process start-up to overlap).
    """

    name = "espeak"
    variant_keys = ("rate", "pitch")

    def __init__(self, rate: int = 160, pitch: int = 50, sample_rate: int | None = None, workers: int = 4,
                 binary: str = "espeak-ng"):
        if not espeak.available(binary):
            raise TtsError(f"{binary} is not installed: `apt-get install espeak-ng` (or use backend: coqui/piper)")
        self.binary = binary
        self.rate, self.pitch, self.workers = rate, pitch, max(1, int(workers))
        self.known_voices, self.known_variants = espeak.catalog(self.binary)
        self.native_rate = 22050
        self.sample_rate = int(sample_rate or self.native_rate)

    def voices(self) -> list[str]:
        return [v + var for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS]

    def check_voice(self, voice: str) -> None:
        """espeak-ng silently falls back to its default voice on a typo; we refuse instead."""
        name, _, variant = EspeakVoice.parse(voice).name.partition("+")
        if name.lower() not in self.known_voices or (variant and variant.lower() not in self.known_variants):
            raise TtsError(f"espeak-ng has no voice {voice!r}; list voices with `espeak-ng --voices=en` and "
                           f"variants with `espeak-ng --voices=variant` (e.g. en-us+f3)")

    def _one(self, text: str, voice: str) -> np.ndarray:
        self.check_voice(voice or "en-us")
        v = EspeakVoice.parse(voice or "en-us")
        pitch = v.pitch if v.pitch is not None else self.pitch
        try:
            wav, _ = espeak.speak(text, v.name, v.rate or self.rate, pitch, self.sample_rate, exe=self.binary)
        except espeak.EspeakError as e:
            raise TtsError(str(e)) from e
        return wav

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        check_lengths(texts, voices)
        if self.workers == 1 or len(texts) <= 1:
            return [self._one(t, v) for t, v in zip(texts, voices)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._one, texts, voices))
