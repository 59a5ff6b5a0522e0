"""The one pocketsphinx wrapper: decoder setup, feeding a waveform, word segments, dictionary, phone loop.

Why one copy: ASR (``stages/asr.py``), forced alignment (``stages/align_sphinx.py``) and the synthesis
alignment gate (``synth/gates.py``) all decode with pocketsphinx. The 16-bit conversion, the per-utterance
reset and the rule for which segments are words must be the same everywhere, or the three disagree about
the same audio.

* Digital silence (exact zeros, as in synthesized audio) makes pocketsphinx's front end fail, so callers
  that feed such audio ask for a fixed-seed ``dither`` far below the speech level: deterministic.
* pocketsphinx keeps cepstral-mean and noise estimates between utterances; :meth:`Sphinx.decode` resets
  them (``reinit_feat``) so every item is decoded independently of the ones before it.
* Segments whose word starts with ``<`` (``<s>``, ``</s>``, ``<sil>``), ``[`` (``[NOISE]``), ``+``
  (``+BREATH+``) or ``(`` (``(NULL)``) are fillers, not words; pronunciation variants ``word(2)`` are
  reported as ``word``. Dictionary words never start with those characters.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..manifests.schema import TARGET_SAMPLE_RATE

FRAME_RATE = 100.0  # pocketsphinx's default frame rate (frames per second)
FILLER_PREFIXES = ("<", "[", "+", "(")
_VARIANT = re.compile(r"\(\d+\)$")


def base_word(word: str) -> str:
    """``"on(2)"`` -> ``"on"``: the dictionary word behind a pronunciation variant."""
    return _VARIANT.sub("", word)


def is_filler(word: str) -> bool:
    return base_word(word).startswith(FILLER_PREFIXES)


def log_prob(p: float) -> float:
    """pocketsphinx reports segment scores as probabilities; callers work in natural log."""
    return math.log(max(float(p), 1e-300))


@dataclass(frozen=True)
class Seg:
    """One decoded segment: the word (variant suffix removed), its frames (end inclusive) and scores."""

    word: str
    start_frame: int
    end_frame: int
    ascore: float  # acoustic likelihood, linear scale
    prob: float  # posterior probability (ASR search only)

    @property
    def start(self) -> float:
        return self.start_frame / FRAME_RATE

    @property
    def end(self) -> float:
        return (self.end_frame + 1) / FRAME_RATE


class Sphinx:
    """A pocketsphinx ``Decoder`` (bundled US English model unless ``hmm``/``dictionary`` are given).

    ``config`` goes to the decoder as is (``lm=None`` for alignment only, ``cmn``, beams, ``allphone``...);
    ``dither``/``seed`` set the noise added before 16-bit conversion (0: none).
    """

    def __init__(self, hmm: str | None = None, dictionary: str | None = None, dither: float = 0.0,
                 seed: int = 0, **config: Any):
        from pocketsphinx import Decoder

        kw: dict[str, Any] = {"loglevel": "FATAL", **config}
        if hmm:
            kw["hmm"] = hmm
        if dictionary:
            kw["dict"] = dictionary
        self.decoder = Decoder(**kw)
        self.dither, self.seed = float(dither), int(seed)

    @classmethod
    def phone_loop(cls, **config: Any) -> "Sphinx":
        """A free phone loop (any phone sequence) with the bundled phone LM: the reference a forced
        alignment's likelihood is compared against (goodness of pronunciation)."""
        from pocketsphinx import get_model_path

        return cls(**config, allphone=os.path.join(get_model_path("en-us"), "en-us-phone.lm.bin"))

    @property
    def model_name(self) -> str:
        """The acoustic model's folder name (``en-us`` for the bundled one)."""
        return os.path.basename(str(self.decoder.config["hmm"])).rstrip("/")

    def lookup(self, word: str) -> str | None:
        """The word's phones (``"TH R IY"``), or None when it is not in the pronouncing dictionary."""
        return self.decoder.lookup_word(word)

    def in_vocab(self, word: str) -> bool:
        return self.lookup(word) is not None

    def pcm16(self, wav: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> bytes:
        """Mono float waveform -> 16 kHz signed 16-bit PCM bytes (resampled, dithered, clipped)."""
        if sample_rate != TARGET_SAMPLE_RATE:
            import soxr

            wav = soxr.resample(wav, sample_rate, TARGET_SAMPLE_RATE)
        if self.dither > 0:
            wav = wav + np.random.default_rng(self.seed).normal(0.0, self.dither, len(wav)).astype(np.float32)
        return (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16).tobytes()

    def decode(self, pcm: bytes) -> None:
        """One whole utterance through the current search, starting from fresh feature statistics."""
        d = self.decoder
        d.reinit_feat()  # CMN/noise estimates carry over between utterances: reset so items are independent
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()

    def hypothesis(self) -> str | None:
        hyp = self.decoder.hyp()
        return None if hyp is None else hyp.hypstr.strip()

    def segments(self, fillers: bool = False) -> list[Seg] | None:
        """The last utterance's segments (None when the search found no path); fillers dropped unless asked."""
        segs = self.decoder.seg()
        if segs is None:
            return None
        return [Seg(base_word(s.word), s.start_frame, s.end_frame, s.ascore, s.prob) for s in segs
                if fillers or not is_filler(s.word)]

    def align(self, words: Sequence[str], pcm: bytes) -> list[Seg] | None:
        """Force-align ``words`` (all in the dictionary) to the audio; their segments in order, or None.

        Raises RuntimeError when pocketsphinx refuses the text or the audio."""
        self.decoder.set_align_text(" ".join(words))
        self.decode(pcm)
        return self.segments()
