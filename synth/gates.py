"""Quality gates for synthesized items: text sanity, duration, speaking rate, forced alignment, round-trip WER.

Why forced alignment is the offline default: the offline ASR (pocketsphinx) is weak on synthetic voices
(about 0.8 WER on espeak-ng speech vs 0.22 on real speech), so a WER gate with it would reject good audio.
Aligning the *known* text to the audio asks a narrower question: can every word be found, in order, and
does each stretch of audio sound like its word (score against a free phone loop)? Measured here on 72
espeak-ng utterances (12 sentences x 6 voices) with the defaults (``min_word_score=-6``, words of
3+ phones): 65/72 correct texts pass, and 54/72 texts with one substituted word, 49/72 with two and
72/72 wholly wrong texts fail; on the 30 utterances of the instruct demo 23 pass. Alignment alone
(``min_word_score: null``) passes 66/72 correct texts but catches only 7/72 one-word substitutions
(reproduce with ``python -P bench/bench_synth.py --gate-quality``). Configure a Whisper model (``wer`` gate,
local path) when you need an ASR check.

Every gate returns ``GateResult(name, passed, value, threshold, detail)``; a failed one becomes the row's
error reason ``gate <name>: ...`` so the errors table can be counted per gate.

Decoding goes through the one pocketsphinx wrapper (``stages/sphinx.py``) and text through the one normalizer
(``stages/textnorm.py``), the same as ASR and forced alignment.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import soxr

from ..manifests.schema import TARGET_SAMPLE_RATE
from ..stages.sphinx import Sphinx, log_prob
from ..stages.textnorm import normalize_text, normalized_words


@dataclass
class GateResult:
    name: str
    passed: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""

    def reason(self) -> str:
        return f"gate {self.name}: value {self.value} outside {self.threshold}; {self.detail}".rstrip("; ")


# --- text ---------------------------------------------------------------------------------------
def text_gate(text: str | None, min_chars: int = 2, max_chars: int = 2000, min_letter_ratio: float = 0.6,
              max_repeat: int = 6) -> GateResult:
    """Empty or garbled text: too short/long, few letters, a character repeated many times, control chars."""
    t = (text or "").strip()
    if len(t) < min_chars:
        return GateResult("text", False, len(t), f">= {min_chars} chars", "empty text; the LLM or source gave nothing")
    if len(t) > max_chars:
        return GateResult("text", False, len(t), f"<= {max_chars} chars", "too long to synthesize in one utterance")
    if "\ufffd" in t or any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in t):
        return GateResult("text", False, "bad chars", "none", "replacement/control characters: fix the text encoding")
    nonspace = [c for c in t if not c.isspace()]
    ratio = sum(c.isalpha() for c in nonspace) / max(1, len(nonspace))
    if ratio < min_letter_ratio:
        return GateResult("text", False, round(ratio, 3), f">= {min_letter_ratio}", "mostly symbols/digits (garbled)")
    m = re.search(r"(.)\1{%d,}" % max_repeat, t)
    if m:
        return GateResult("text", False, repr(m.group(0)[:12]), f"<= {max_repeat} repeats",
                          "repeated characters (garbled)")
    return GateResult("text", True, round(ratio, 3), f">= {min_letter_ratio}")


# --- duration and rate -------------------------------------------------------------------------------
def duration_gate(seconds: float, min_s: float = 0.5, max_s: float = 30.0) -> GateResult:
    ok = min_s <= seconds <= max_s
    return GateResult("duration", ok, round(seconds, 3), f"[{min_s}, {max_s}] s",
                      "" if ok else "raise max_s/lower min_s, or shorten the text")


def rate_gate(text: str, seconds: float, min_wps: float = 1.0, max_wps: float = 5.0) -> GateResult:
    """Words per second of the utterance (including the engine's padding): too slow or too fast speech."""
    words = len((text or "").split())
    wps = words / seconds if seconds > 0 else float("inf")
    ok = min_wps <= wps <= max_wps
    return GateResult("rate", ok, round(wps, 3), f"[{min_wps}, {max_wps}] words/s",
                      "" if ok else "the audio does not fit the text's length (truncated or stuck synthesis?)")


# --- forced alignment (pocketsphinx) ---------------------------------------------------------------------
class AlignGate:
    """Pass when the known text's words align, in order, within the beam, with an acceptable score.

    Text goes through the one normalizer (``stages/textnorm.py``: "3 pm" -> "three pm"), the same words
    the audio is compared with everywhere else. The score of a word is a goodness-of-pronunciation
    measure: the forced alignment's acoustic log-likelihood over the word's frames minus that of a free
    phone loop over the same frames, per frame (0 = as good as the best phone sequence; very negative =
    the audio there is not this word). The gate fails when the worst word of at least ``min_phones``
    phones scores below ``min_word_score`` (None: alignment only).

    Words still missing from the pronouncing dictionary after normalization (names, rare spellings):
    ``oov="reject"`` fails the item. ``oov="skip"`` (default) aligns each as a spoken-noise placeholder
    (the model's ``+SPN+`` phone, which pocketsphinx may also skip), so its audio has somewhere to go
    while every dictionary word must still be found, in order, and score well; a passing item's value
    names the unchecked words (``oov:<words>``). Why not pass such items unchecked, as this gate once
    did: one unknown token (a digit, before normalization) then let silence or the wrong speech through.
    Why not simply drop them from the text: their audio is then forced onto the neighbouring words and
    good speech fails (measured: "rises as vapour, cools" found no alignment). Why a floor: with fewer
    than ``min_known`` of the words in the dictionary too little is checked, so the item fails.
    """

    name = "align"

    def __init__(self, beam: float = 1e-48, min_word_score: float | None = -6.0, min_phones: int = 3,
                 oov: str = "skip", min_known: float = 0.75):
        if oov not in ("skip", "reject"):
            raise ValueError(f"align gate oov={oov!r}: use 'skip' or 'reject'")
        self.beam, self.oov, self.min_phones = float(beam), oov, int(min_phones)
        self.min_known = float(min_known)
        self.min_word_score = None if min_word_score is None else float(min_word_score)
        self.sphinx = Sphinx(samprate=TARGET_SAMPLE_RATE, fsgusefiller=False, beam=self.beam, pbeam=self.beam,
                             wbeam=min(1.0, self.beam * 1e8))
        self.phones = None
        if self.min_word_score is not None:
            self.phones = Sphinx.phone_loop(samprate=TARGET_SAMPLE_RATE, lw=2.0, beam=1e-40, pbeam=1e-40)
        self._placeholders: set[str] = set()  # OOV words this gate added to its dictionary as +SPN+

    def in_vocab(self, word: str) -> bool:
        """In the pronouncing dictionary (placeholders this gate added do not count)."""
        return word not in self._placeholders and self.sphinx.in_vocab(word)

    def align(self, text: str, wav: np.ndarray, sample_rate: int) -> list[tuple[str, float, float, float]] | None:
        """[(word, start_s, end_s, score)] for the text's dictionary words (OOV placeholders left out), or
        None when the text cannot be aligned to the audio. ``score`` is the per-frame log-likelihood ratio
        against the free phone loop (nan when not computed)."""
        words = normalized_words(text)
        for w in set(words) - self._placeholders:
            if not self.sphinx.in_vocab(w):
                self.sphinx.decoder.add_word(w, "+SPN+", True)
                self._placeholders.add(w)
        pcm = self.sphinx.pcm16(wav, sample_rate)
        segs = self.sphinx.align(words, pcm) if words else None
        if segs is None:
            return None
        segs = [s for s in segs if s.word not in self._placeholders]
        free: list[tuple[int, int, float]] = []
        if self.phones is not None:
            self.phones.decode(pcm)
            free = [(p.start_frame, p.end_frame, log_prob(p.ascore)) for p in self.phones.segments(fillers=True) or []]
        out = []
        for s in segs:
            a, b, score = s.start_frame, s.end_frame, float("nan")
            if self.phones is not None:
                ref = sum(sc * (min(b, d) - max(a, c) + 1) / (d - c + 1) for c, d, sc in free if min(b, d) >= max(a, c))
                score = (log_prob(s.ascore) - ref) / (b - a + 1)
            out.append((s.word, s.start, s.end, score))
        return out

    def __call__(self, text: str, wav: np.ndarray, sample_rate: int) -> GateResult:
        spoken = normalized_words(text)
        if not spoken:
            return GateResult(self.name, False, "no words", "all words aligned", "nothing to align")
        oov = sorted({w for w in spoken if not self.in_vocab(w)})
        value = "oov:" + ",".join(oov[:5])
        if oov and self.oov == "reject":
            return GateResult(self.name, False, value, "words in dictionary",
                              "words missing from the pronouncing dictionary; set oov: skip")
        words = [w for w in spoken if w not in oov]
        if len(words) < max(1.0, self.min_known * len(spoken)):
            return GateResult(self.name, False, value, f">= {self.min_known:.0%} of words in dictionary",
                              f"only {len(words)} of {len(spoken)} words can be checked against the audio")
        aligned = self.align(text, wav, sample_rate)
        if aligned is None:
            return GateResult(self.name, False, "no alignment", f"all {len(words)} words within beam {self.beam:g}",
                              "the audio does not match the text (garbled or truncated speech)")
        got = [w for w, *_ in aligned]
        if got != words:
            return GateResult(self.name, False, f"{len(got)}/{len(words)} words", "all words aligned",
                              f"aligned {' '.join(got[:8])!r}")
        if self.min_word_score is None:
            return GateResult(self.name, True, value if oov else f"{len(words)}/{len(words)} words", f"beam {self.beam:g}")
        # short function words ("of", "the") are reduced by every TTS voice and mis-scored by the US model;
        # a wrong or garbled word shows up in the longer ones
        scored = [x for x in aligned if len((self.sphinx.lookup(x[0]) or "").split()) >= self.min_phones]
        worst = min(scored or aligned, key=lambda x: x[3])
        ok = worst[3] >= self.min_word_score
        return GateResult(self.name, ok, value if ok and oov else round(worst[3], 2),
                          f">= {self.min_word_score} (worst word score)",
                          f"worst word score {worst[3]:.2f}" if ok and oov else
                          "" if ok else f"word {worst[0]!r} at {worst[1]:.2f}s does not sound like its text")


# --- round-trip ASR WER -------------------------------------------------------------------------------------
class WerGate:
    """Round-trip ASR: transcribe the synthesized audio and pass when WER(text, hypothesis) <= ``max_wer``.

    ``asr`` is any callable ``(wav16k) -> text``; :func:`whisper_asr` builds one from a local Whisper folder.
    """

    name = "wer"

    def __init__(self, asr: Callable[[np.ndarray], str], max_wer: float = 0.2):
        self.asr, self.max_wer = asr, float(max_wer)

    def __call__(self, text: str, wav: np.ndarray, sample_rate: int) -> GateResult:
        import jiwer

        if sample_rate != TARGET_SAMPLE_RATE:
            wav = soxr.resample(wav, sample_rate, TARGET_SAMPLE_RATE).astype(np.float32)
        ref, hyp = normalize_text(text), normalize_text(self.asr(wav))
        if not ref:
            return GateResult(self.name, False, "empty reference", f"<= {self.max_wer}", "nothing to compare")
        wer = float(jiwer.wer(ref, hyp)) if hyp else 1.0
        return GateResult(self.name, wer <= self.max_wer, round(wer, 3), f"<= {self.max_wer}",
                          "" if wer <= self.max_wer else f"heard {hyp[:80]!r}")


def whisper_asr(model_path: str, device: str = "cpu") -> Callable[[np.ndarray], str]:
    """A Whisper (or any CTC/seq2seq ASR) model from a local folder as ``(wav16k) -> text``."""
    if not model_path or not os.path.isdir(model_path):
        raise ValueError(f"wer gate: asr_model {model_path!r} is not a local folder; give a downloaded Whisper "
                         f"checkpoint folder (we never download models)")
    from transformers import pipeline

    pipe = pipeline("automatic-speech-recognition", model=model_path, device=device)

    def run(wav: np.ndarray) -> str:
        return pipe({"raw": wav, "sampling_rate": TARGET_SAMPLE_RATE})["text"]

    return run
