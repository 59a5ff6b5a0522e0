"""Benchmark pair texts: lexical (sWUGGY-like), syntactic (sBLIMP-like) and story (sSC/tSC-like) pairs.

Why we make our own: the published sets are large downloads with their own licenses and voices; a
pipeline-made set is spoken by the same TTS voice and tokenized exactly like the training data, so it
measures what the data taught. The published folders load into the same table (``published.py``).

Output: one JSON object per pair, ``{pair_id, kind, paradigm, positive_text, negative_text, voice}``
(+ ``positive_word``/``positive_phones``/``negative_phones`` for lexical pairs), the text being what the
TTS reads. Deterministic: pair ``i`` of a kind is drawn from ``Random(f"{seed}|{kind}|{i}")`` (lexical
pairs from one seeded shuffle), so the same seed and counts give the same file.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import grammar
from .phones import Lexicon, VOWELS, load_lexicon, speak_markup, stressed_syllable, syllables, word_frequencies

KINDS = ("lexical", "syntactic", "story")
DEFAULT_COUNTS = {"lexical": 300, "syntactic": 320, "story": 100}
DEFAULT_VOICE = "en_US-joe-medium"  # the bundled Piper voice (manifests/models.py)
# frequent in the LM's (web) text but not what a benchmark should say; the CMU dictionary has no such tags
AVOID = frozenset("bitch bullshit crap damn dick fuck fucked fucking penis porn pussy rape sex sexy shit shitty".split())


def non_words(lex: Lexicon, phones: Sequence[str]) -> list[tuple[str, ...]]:
    """Every one-phone substitution (vowel for vowel, consonant for consonant) that is phonotactically legal
    by the bigram check and is no dictionary pronunciation."""
    inventory = sorted({a for a, _ in lex.bigrams if a != "#"})
    out = []
    for i, p in enumerate(phones):
        for q in inventory:
            if q == p or (q in VOWELS) != (p in VOWELS):
                continue
            cand = (*phones[:i], q, *phones[i + 1:])
            if lex.legal(cand) and not lex.is_word(cand):
                out.append(cand)
    return out


def lexical_pairs(n: int, seed: int = 0, words: Iterable[str] | None = None, top: int = 5000, min_phones: int = 3,
                  max_phones: int = 8, lex: Lexicon | None = None, closest: int = 3) -> Iterator[dict[str, Any]]:
    """``n`` (word, non-word) pairs from the ``top`` most frequent dictionary words (or from ``words``).

    The non-word is drawn among the ``closest`` legal substitutions whose phone-bigram log-probability is
    nearest the word's (as sWUGGY matches its pairs), so typicality of the phones does not give it away.
    """
    lex = lex or load_lexicon()
    pool = [w for w in (sorted(set(words)) if words is not None else lex.words) if w in lex.words and len(w) >= 3
            and w not in AVOID
            and min_phones <= len(lex.words[w]) <= max_phones and syllables(lex.words[w]) >= 1]
    if words is None:
        freq = word_frequencies(pool)
        pool = sorted(sorted(pool, key=lambda w: (-freq[w], w))[:top])
    rng = random.Random(f"{seed}|lexical")
    rng.shuffle(pool)
    made, used = 0, set()
    for w in pool:
        if made >= n:
            break
        phones = lex.words[w]
        cands = [c for c in non_words(lex, phones) if c not in used]
        if not cands:
            continue
        target = lex.log_prob(phones)
        cands.sort(key=lambda c: (abs(lex.log_prob(c) - target), c))
        neg = rng.choice(cands[:closest])
        used.add(neg)
        stress = stressed_syllable(w) or 0
        stress = stress if stress < syllables(phones) else 0
        yield {"pair_id": f"lexical-{made:05d}", "kind": "lexical", "paradigm": "word_nonword",
               "positive_text": speak_markup(phones, stress), "negative_text": speak_markup(neg, stress),
               "positive_word": w, "positive_phones": " ".join(phones), "negative_phones": " ".join(neg)}
        made += 1
    if made < n:
        raise ValueError(f"only {made} lexical pairs could be made from {len(pool)} words (asked {n}); give more "
                         f"words or lower the count")


def _drawn(kind: str, paradigms: Sequence[str], n: int, seed: int, make) -> Iterator[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    i = made = 0
    while made < n:
        if i > 50 * n + 100:
            raise ValueError(f"{kind}: only {made} distinct pairs after {i} draws (asked {n}); lower the count")
        paradigm = paradigms[made % len(paradigms)]  # balanced over paradigms
        pos, neg = make(random.Random(f"{seed}|{kind}|{i}"), paradigm)
        i += 1
        if (pos, neg) in seen or pos == neg:
            continue
        seen.add((pos, neg))
        yield {"pair_id": f"{kind}-{made:05d}", "kind": kind, "paradigm": paradigm, "positive_text": pos,
               "negative_text": neg}
        made += 1


def syntactic_pairs(n: int, seed: int = 0, paradigms: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    names = list(paradigms or grammar.PARADIGMS)
    bad = [p for p in names if p not in grammar.PARADIGMS]
    if bad:
        raise ValueError(f"unknown syntactic paradigms {bad}; known: {', '.join(grammar.PARADIGMS)}")
    return _drawn("syntactic", names, n, seed, lambda r, p: grammar.PARADIGMS[p](r))


def story_pairs(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    return _drawn("story", grammar.STORY_PARADIGMS, n, seed, grammar.story)


def make_pairs(counts: dict[str, int] | None = None, seed: int = 0, voice: str = DEFAULT_VOICE,
               words: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """All pairs, kind by kind; ``voice`` is recorded per pair (the recipe speaks both members with it)."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    bad = set(counts) - set(KINDS)
    if bad:
        raise ValueError(f"unknown pair kinds {sorted(bad)}; use {', '.join(KINDS)}")
    out: list[dict[str, Any]] = []
    if counts["lexical"]:
        out += lexical_pairs(counts["lexical"], seed, words)
    if counts["syntactic"]:
        out += syntactic_pairs(counts["syntactic"], seed)
    if counts["story"]:
        out += story_pairs(counts["story"], seed)
    for p in out:
        p["voice"] = voice
    return out


def write_pairs(pairs: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def read_words(path: str | Path) -> list[str]:
    """Words of a text file (e.g. the training transcripts), lowercased: the lexical pairs' vocabulary."""
    import re

    return sorted(set(re.findall(r"[a-z]+", Path(path).read_text(encoding="utf-8", errors="replace").lower())))
