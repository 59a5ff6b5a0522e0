"""Quality gates for synthesized items: text sanity, duration, speaking rate, round-trip ASR, forced alignment.

The default audio check is the round trip (:class:`WerGate`): Whisper tiny.en transcribes the clip and the
gate compares it with the text by phoneme error rate and by how far each misheard word *sounds* from the
text's word, so Whisper's near-misses pass and a swapped word fails. Per-voice figures on a labelled set:
``bench/bench_gates.py`` and docs/synth.md. The alignment gate (:class:`AlignGate`, pocketsphinx) is
opt-in: on espeak-ng speech it passed 65/72 correct clips and caught 54/72 one-word substitutions
(``python -P bench/bench_synth.py --gate-quality``), short of both targets.

Every gate returns ``GateResult(name, passed, value, threshold, detail)``; a failed one becomes the row's
error reason ``gate <name>: ...``. Text goes through the one normalizer (``stages/textnorm.py``).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

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


class AlignGate:
    """Pass when the known text's words align, in order, within the beam, with an acceptable score.

    Text goes through the one normalizer (``stages/textnorm.py``: "3 pm" -> "three pm"), the same words
    the audio is compared with everywhere else. The score of a word is a goodness-of-pronunciation
    measure: the forced alignment's acoustic log-likelihood over the word's frames minus that of a free
    phone loop over the same frames, per frame (0 = as good as the best phone sequence; very negative =
    the audio there is not this word). The gate fails when the worst word of at least ``min_phones``
    phones scores below ``min_word_score`` (None: alignment only).

    Words missing from the pronouncing dictionary: ``oov="reject"`` fails the item; ``oov="skip"``
    (default) aligns each as a spoken-noise placeholder (``+SPN+``) so its audio has somewhere to go while
    every dictionary word must still be found and score well (passing them unchecked let silence through;
    dropping them forced their audio onto neighbours). Fewer than ``min_known`` dictionary words fails.
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


class WerGate:
    """Round-trip ASR: transcribe the clip, compare with the text it should say (both normalized).

    Fails when the phoneme error rate (PER: edits between the espeak-ng phonemes of text and transcript,
    per phoneme of the text) is over ``max_per`` (silence, a cut clip, another sentence, garbled speech;
    PER, unlike WER, barely counts "fire's" for "fires"), when WER is over ``max_wer`` (default off), or one
    error region of the alignment (adjacent substituted/deleted/inserted words, one of them 4+ letters)
    sounds unlike what was heard: a phoneme edit distance (:func:`sounds`) of at least ``min_miss_chars``
    and more than ``max_miss`` of the region's length ("parked" heard as "part": 1 of 6, a mishearing
    Whisper tiny makes; "smooth" heard as "market": 6 of 8, another word). Why the second test: a
    one-word substitution is 1/N of an N-word text, below any WER threshold that good long clips pass.
    ``max_miss: null`` leaves only the PER test. ``asr``: an ASR backend (``stages/asr.py``) or a callable
    ``(wav16k) -> text``; :meth:`from_config` loads the ``whisper`` backend (bundled tiny.en) once per gate.
    """

    name = "wer"

    def __init__(self, asr: Any, max_per: float = 0.35, max_miss: float | None = 0.4, min_miss_chars: int = 3,
                 max_wer: float = 1.0):
        self.asr, self.max_wer, self.max_per = asr, float(max_wer), float(max_per)
        self.max_miss = None if max_miss is None else float(max_miss)
        self.min_miss_chars = int(min_miss_chars)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "WerGate":
        """``{backend: whisper, max_per, max_miss, min_miss_chars, max_wer, model_path, ...}``; the keys
        that are not the gate's go to the ASR backend."""
        from ..manifests.registry import ASR_BACKENDS

        cfg = dict(cfg)
        mine = {k: cfg.pop(k) for k in ("max_per", "max_wer", "max_miss", "min_miss_chars") if k in cfg}
        backend = cfg.pop("backend", "whisper")
        if "asr_model" in cfg:  # the name this gate's setting had before the backend registry
            cfg["model_path"] = cfg.pop("asr_model")
        try:
            return cls(ASR_BACKENDS.load(backend)(**cfg), **mine)
        except (FileNotFoundError, OSError) as e:
            raise ValueError(f"wer gate: asr_model {cfg.get('model_path')!r} is not a local folder the {backend!r} "
                             f"ASR backend can load ({e}); leave it unset for the bundled Whisper tiny.en") from e

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        # one clip per call: the batched Whisper path packs clips into shared 30 s windows, where one
        # clip's words could be credited to its neighbour (measured: a clip's text landing in the one before)
        if hasattr(self.asr, "transcribe"):
            return [self.asr.transcribe(w)[0] for w in wavs]
        return [self.asr(w) for w in wavs]

    def judge(self, text: str, heard: str) -> GateResult:
        """The verdict on ``text`` given the transcript ``heard``."""
        ref, hyp = normalize_text(text), normalize_text(heard)
        limit = f"PER <= {self.max_per}, WER <= {self.max_wer}" + (
            "" if self.max_miss is None else f", no word missed by > {self.max_miss}")
        if not ref:
            return GateResult(self.name, False, "empty reference", limit, "nothing to compare")
        wer, misses = word_errors(ref, hyp)
        per = phoneme_error_rate(ref, hyp)
        if per > self.max_per or wer > self.max_wer:
            return GateResult(self.name, False, round(wer, 3), limit, f"PER {per:.2f}; heard {hyp[:80]!r}")
        far = [m for m in misses if self.max_miss is not None and m[2] > self.max_miss and m[3] >= self.min_miss_chars
               and max(map(len, m[0].split()), default=0) >= 4]  # the text's "a" heard as "the": not a content miss
        if far:
            worst = max(far, key=lambda m: m[2])
            return GateResult(self.name, False, round(wer, 3), limit,
                              f"{worst[0] or '(nothing)'!r} heard as {worst[1] or '(nothing)'!r}")
        return GateResult(self.name, True, round(wer, 3), limit)

    def batch(self, items: list[tuple[str, np.ndarray, int]]) -> list[GateResult]:
        """Judge many clips; ``items`` = [(text, wav, sample_rate)]."""
        wavs = [wav if sr == TARGET_SAMPLE_RATE else soxr.resample(wav, sr, TARGET_SAMPLE_RATE).astype(np.float32)
                for _, wav, sr in items]
        return [self.judge(text, heard) for (text, _, _), heard in zip(items, self.transcribe(wavs) if wavs else [])]

    def __call__(self, text: str, wav: np.ndarray, sample_rate: int) -> GateResult:
        return self.batch([(text, wav, sample_rate)])[0]


def phoneme_error_rate(ref: str, hyp: str) -> float:
    """Edits between the phonemes of ``ref`` and ``hyp`` per phoneme of ``ref``."""
    from rapidfuzz.distance import Levenshtein

    pr = sounds(ref)
    return Levenshtein.distance(pr, sounds(hyp)) / max(len(pr), 1)


def word_errors(ref: str, hyp: str) -> tuple[float, list[tuple[str, str, float, int]]]:
    """WER and the error regions (adjacent edits merged): (ref words, hyp words, phoneme edits / region
    length, phoneme edits), phonemes from :func:`sounds` ("parked" heard as "part": 1 edit of 6)."""
    import jiwer
    from rapidfuzz.distance import Levenshtein

    if not hyp:
        return 1.0, [(ref, "", 1.0, len(sounds(ref)))]
    out = jiwer.process_words(ref, hyp)
    rw, hw = ref.split(), hyp.split()
    regions: list[list[int]] = []
    for c in out.alignments[0]:
        if c.type == "equal":
            continue
        if regions and regions[-1][1] == c.ref_start_idx and regions[-1][3] == c.hyp_start_idx:
            regions[-1][1], regions[-1][3] = c.ref_end_idx, c.hyp_end_idx
        else:
            regions.append([c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx])
    misses = []
    for a, b, c, d in regions:
        r, h = " ".join(rw[a:b]), " ".join(hw[c:d])
        pr, ph = sounds(r), sounds(h)
        dist = Levenshtein.distance(pr, ph)
        misses.append((r, h, dist / max(len(pr), len(ph), 1), dist))
    return float(out.wer), misses


@functools.lru_cache(maxsize=1)
def _phonemizer() -> Any:
    from piper.phonemize_espeak import EspeakPhonemizer  # type: ignore[import-not-found]

    return EspeakPhonemizer()


@functools.lru_cache(maxsize=8192)
def sounds(words: str) -> str:
    """The phonemes of ``words`` (US English espeak-ng through piper-tts's in-process bridge, stress and
    spaces dropped); the letters themselves where piper-tts is not installed."""
    try:
        ipa = "".join("".join(s) for s in _phonemizer().phonemize("en-us", words)) if words else ""
    except ImportError:
        return words.replace(" ", "")
    return "".join(ch for ch in ipa if ch.isalpha() and ch not in "ˈˌ" or ch in "ːɚɝ")
