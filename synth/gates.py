"""Quality gates for synthesized items: text sanity, duration, speaking rate, forced alignment, round-trip WER.

Why forced alignment is the offline default: the offline ASR (pocketsphinx) is weak on synthetic voices
(about 0.8 WER on espeak-ng speech vs 0.22 on real speech), so a WER gate with it would reject good audio.
Aligning the *known* text to the audio asks a narrower question: can every word be found, in order, and
does each stretch of audio sound like its word (score against a free phone loop)? Measured here on 72
espeak-ng utterances (12 sentences x 6 voices) with the defaults (``min_word_score=-6``, words of
3+ phones): 65/72 correct texts pass, and 54/72 texts with one substituted word, 49/72 with two and
72/72 wholly wrong texts fail; on the 30 utterances of the instruct demo 26 pass. Alignment alone
(``min_word_score: null``) passes 66/72 correct texts but catches only 7/72 one-word substitutions
(reproduce with ``python -P bench/synth.py --gate-quality``). Configure a Whisper model (``wer`` gate,
local path) when you need an ASR check.

Every gate returns ``GateResult(name, passed, value, threshold, detail)``; a failed one becomes the row's
error reason ``gate <name>: ...`` so the errors table can be counted per gate.

Note: the pocketsphinx aligner below is small on purpose; it may be replaced by ``slmfactory.stages.align``.
"""
from __future__ import annotations

import math
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import soxr

from ..manifests.schema import TARGET_SAMPLE_RATE


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
_TOKEN = re.compile(r"[a-z0-9']+")
_SPECIAL = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "(NULL)"}


def align_words_text(text: str) -> list[str]:
    return [w.strip("'") for w in _TOKEN.findall((text or "").lower()) if w.strip("'")]


def to_pcm16(wav: np.ndarray, sample_rate: int) -> bytes:
    if sample_rate != TARGET_SAMPLE_RATE:
        wav = soxr.resample(wav, sample_rate, TARGET_SAMPLE_RATE)
    return (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class AlignGate:
    """Pass when every word of the known text aligns, in order, within the beam, with an acceptable score.

    The score of a word is a goodness-of-pronunciation measure: the forced alignment's acoustic
    log-likelihood over the word's frames minus that of a free phone loop over the same frames, per frame
    (0 = as good as the best phone sequence; very negative = the audio there is not this word). The gate
    fails when the worst word of at least ``min_phones`` phones scores below ``min_word_score`` (None:
    alignment only).

    ``oov`` decides what happens to words missing from the pronouncing dictionary (names, digits):
    ``"skip"`` passes the item with the gate value ``oov:<words>`` (alignment not attempted), ``"reject"``
    fails it.
    """

    name = "align"

    def __init__(self, beam: float = 1e-48, min_word_score: float | None = -6.0, min_phones: int = 3,
                 oov: str = "skip"):
        from pocketsphinx import Decoder, get_model_path

        if oov not in ("skip", "reject"):
            raise ValueError(f"align gate oov={oov!r}: use 'skip' or 'reject'")
        self.beam, self.oov, self.min_phones = float(beam), oov, int(min_phones)
        self.min_word_score = None if min_word_score is None else float(min_word_score)
        self.decoder = Decoder(samprate=TARGET_SAMPLE_RATE, loglevel="FATAL", fsgusefiller=False,
                               beam=self.beam, pbeam=self.beam, wbeam=min(1.0, self.beam * 1e8))
        self.phones = None
        if self.min_word_score is not None:
            self.phones = Decoder(samprate=TARGET_SAMPLE_RATE, loglevel="FATAL", lw=2.0, beam=1e-40, pbeam=1e-40,
                                  allphone=os.path.join(get_model_path("en-us"), "en-us-phone.lm.bin"))

    @staticmethod
    def _run(d: Any, pcm: bytes) -> None:
        d.reinit_feat()  # CMN/noise estimates carry over between utterances: reset so items are independent
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()

    def align(self, text: str, wav: np.ndarray, sample_rate: int) -> list[tuple[str, float, float, float]] | None:
        """[(word, start_s, end_s, score)] or None when the text cannot be aligned to the audio.

        ``score`` is the per-frame log-likelihood ratio against the free phone loop (nan when not computed).
        """
        pcm = to_pcm16(wav, sample_rate)
        self.decoder.set_align_text(" ".join(align_words_text(text)))
        self._run(self.decoder, pcm)
        seg = self.decoder.seg()
        if seg is None:
            return None
        words = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame, _log(s.ascore))
                 for s in seg if s.word not in _SPECIAL]
        free: list[tuple[int, int, float]] = []
        if self.phones is not None:
            self._run(self.phones, pcm)
            free = [(p.start_frame, p.end_frame, _log(p.ascore)) for p in self.phones.seg()]
        out = []
        for w, a, b, ll in words:
            score = float("nan")
            if self.phones is not None:
                ref = sum(sc * (min(b, d) - max(a, c) + 1) / (d - c + 1) for c, d, sc in free if min(b, d) >= max(a, c))
                score = (ll - ref) / (b - a + 1)
            out.append((w, a / 100.0, (b + 1) / 100.0, score))  # 100 frames per second
        return out

    def __call__(self, text: str, wav: np.ndarray, sample_rate: int) -> GateResult:
        words = align_words_text(text)
        if not words:
            return GateResult(self.name, False, "no words", "all words aligned", "nothing to align")
        oov = sorted({w for w in words if self.decoder.lookup_word(w) is None})
        if oov:
            ok = self.oov == "skip"
            return GateResult(self.name, ok, "oov:" + ",".join(oov[:5]), "words in dictionary",
                              "" if ok else "words missing from the pronouncing dictionary; set oov: skip")
        aligned = self.align(text, wav, sample_rate)
        if aligned is None:
            return GateResult(self.name, False, "no alignment", f"all {len(words)} words within beam {self.beam:g}",
                              "the audio does not match the text (garbled or truncated speech)")
        got = [w for w, *_ in aligned]
        if got != words:
            return GateResult(self.name, False, f"{len(got)}/{len(words)} words", "all words aligned",
                              f"aligned {' '.join(got[:8])!r}")
        if self.min_word_score is None:
            return GateResult(self.name, True, f"{len(words)}/{len(words)} words", f"beam {self.beam:g}")
        # short function words ("of", "the") are reduced by every TTS voice and mis-scored by the US model;
        # a wrong or garbled word shows up in the longer ones
        scored = [x for x in aligned if len((self.decoder.lookup_word(x[0]) or "").split()) >= self.min_phones]
        worst = min(scored or aligned, key=lambda x: x[3])
        ok = worst[3] >= self.min_word_score
        return GateResult(self.name, ok, round(worst[3], 2), f">= {self.min_word_score} (worst word score)",
                          "" if ok else f"word {worst[0]!r} at {worst[1]:.2f}s does not sound like its text")


def _log(p: float) -> float:
    """pocketsphinx reports segment scores as probabilities; we work in natural log."""
    return math.log(max(float(p), 1e-300))


# --- round-trip ASR WER -------------------------------------------------------------------------------------
def normalize_for_wer(text: str) -> str:
    return " ".join(align_words_text(text))


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
        ref, hyp = normalize_for_wer(text), normalize_for_wer(self.asr(wav))
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
