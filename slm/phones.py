"""The CMU pronouncing dictionary pocketsphinx ships, phone-bigram phonotactics, and ARPAbet -> Piper IPA.

Why these pieces: sWUGGY-style non-words must sound like English words that happen not to exist. We make
them by changing one phone of a real word, keep only results whose every phone bigram (word edges
included) occurs in the dictionary (the phonotactic check), and refuse any phone string that is some
dictionary word's pronunciation (homophones included). Both members of a pair are then spoken from
their phones through Piper's raw-phoneme input (``[[ ... ]]``) with the same stressed syllable, so the
word and its non-word go through the same synthesis path and differ only in the changed phone.

Word frequency (which real words to use) comes from the unigram log-probabilities of the generic
English language model pocketsphinx also ships (``en-us.lm.bin``): nothing to download.
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
EDGE = "#"  # word boundary in the bigram table
# espeak-ng en-us style IPA (what Piper voices are trained on); AH/ER have a stressed and a reduced form
_IPA = {"AA": "ɑː", "AE": "æ", "AH": "ʌ", "AO": "ɔː", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "ER": "ɜː", "EY": "eɪ",
        "IH": "ɪ", "IY": "iː", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "uː", "B": "b", "CH": "tʃ", "D": "d",
        "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ",
        "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z",
        "ZH": "ʒ"}
_REDUCED = {"AH": "ə", "ER": "ɚ", "IY": "i"}
_WORD = re.compile(r"^[a-z]+$")


def cmudict_path() -> str:
    """The dictionary inside the installed pocketsphinx package (``pip install pocketsphinx``)."""
    try:
        from pocketsphinx import get_model_path
    except ImportError as e:  # pragma: no cover - pocketsphinx is a core dependency
        raise RuntimeError("the lexical pairs need the CMU dictionary of pocketsphinx: pip install pocketsphinx") from e
    return os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")


@dataclass
class Lexicon:
    """First pronunciation of each plain lowercase word, every pronunciation, and phone-bigram counts."""

    words: dict[str, tuple[str, ...]]
    pronunciations: frozenset[tuple[str, ...]]
    bigrams: Counter = field(default_factory=Counter)
    min_count: int = 2
    firsts: Counter = field(default_factory=Counter)  # bigram counts by first phone

    def __post_init__(self) -> None:
        for (a, _), k in self.bigrams.items():
            self.firsts[a] += k

    def legal(self, phones: Sequence[str]) -> bool:
        """Every bigram (with ``#`` at both word edges) seen at least ``min_count`` times in the dictionary."""
        seq = [EDGE, *phones, EDGE]
        return all(self.bigrams[(a, b)] >= self.min_count for a, b in zip(seq, seq[1:]))

    def is_word(self, phones: Sequence[str]) -> bool:
        return tuple(phones) in self.pronunciations

    def log_prob(self, phones: Sequence[str]) -> float:
        """Mean bigram log-probability (add-one): how typical the phone string is, for matching pairs."""
        seq, n = [EDGE, *phones, EDGE], len(_IPA) + 1
        lp = [math.log((self.bigrams[(a, b)] + 1) / (self.firsts[a] + n)) for a, b in zip(seq, seq[1:])]
        return sum(lp) / len(lp)


@lru_cache(maxsize=2)
def load_lexicon(path: str | None = None, min_count: int = 2) -> Lexicon:
    path = path or cmudict_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no CMU dictionary; reinstall pocketsphinx or give --cmudict PATH")
    words: dict[str, tuple[str, ...]] = {}
    prons: set[tuple[str, ...]] = set()
    bigrams: Counter = Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            word, phones = parts[0], tuple(p.rstrip("012") for p in parts[1:])
            if any(p not in _IPA for p in phones):
                continue
            prons.add(phones)
            base = word.split("(")[0]
            if "(" in word or not _WORD.match(base):
                continue
            words.setdefault(base, phones)
            seq = [EDGE, *phones, EDGE]
            bigrams.update(zip(seq, seq[1:]))
    return Lexicon(words, frozenset(prons), bigrams, int(min_count))


def word_frequencies(words: Iterable[str], lm_path: str | None = None) -> dict[str, float]:
    """Unigram log-probability of each word in pocketsphinx's generic English LM (very low = unknown)."""
    from pocketsphinx import Config, LogMath, NGramModel, get_model_path

    lm = NGramModel(Config(), LogMath(), lm_path or os.path.join(get_model_path(), "en-us", "en-us.lm.bin"))
    return {w: float(lm.prob([w])) for w in words}


def syllables(phones: Sequence[str]) -> int:
    return sum(p in VOWELS for p in phones)


def stressed_syllable(word: str) -> int | None:
    """Index of the primary-stressed vowel in espeak-ng's reading of ``word`` (Piper's own phonemizer), or
    None when piper-tts is not installed. The CMU dictionary pocketsphinx ships has no stress marks."""
    try:
        from piper.phonemize_espeak import EspeakPhonemizer  # type: ignore[import-not-found]
    except ImportError:
        return None
    ipa = "".join("".join(s) for s in _phonemizer(EspeakPhonemizer).phonemize("en-us", word))
    if "ˈ" not in ipa:
        return 0
    before = ipa.split("ˈ")[0]
    return len(re.findall(r"aɪ|aʊ|eɪ|oʊ|ɔɪ|[aeiouæɑɐɔəɚɛɜɪʊʌᵻ]", before))


@lru_cache(maxsize=1)
def _phonemizer(cls):  # noqa: ANN001, ANN202 - one espeak-ng session per process
    import piper

    return cls(os.path.join(os.path.dirname(piper.__file__), "espeak-ng-data"))


def to_ipa(phones: Sequence[str], stress: int = 0) -> str:
    """ARPAbet -> espeak-style IPA with ``ˈ`` before the ``stress``-th vowel (reduced vowels elsewhere)."""
    out, v = [], 0
    for i, p in enumerate(phones):
        if p in VOWELS:
            if v == stress:
                out.append("ˈ" + _IPA[p])
            elif p in ("AH", "ER") or (p == "IY" and i == len(phones) - 1):
                out.append(_REDUCED[p])
            else:
                out.append(_IPA[p])
            v += 1
        else:
            out.append(_IPA[p])
    return "".join(out)


def speak_markup(phones: Sequence[str], stress: int = 0) -> str:
    """The text a Piper voice reads as exactly these phones (its raw-phoneme syntax)."""
    return f"[[ {to_ipa(phones, stress)} ]]"
