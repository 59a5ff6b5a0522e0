"""Text filters: what cannot be spoken, what is not grounded, what is a near-duplicate.

Why these rules: published spoken-instruction sets (InstructS2S, VoiceAssistant, GLM-4-Voice SFT) drop code,
tables, math notation and over-long items before TTS, because a TTS engine reads them as noise; SQA
recipes keep only answers found in the transcript and de-duplicate questions. Each check returns a short
reason naming what it found, which becomes the errors-table reason.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

from ..stages.textnorm import normalized_words

_CODE = [
    (re.compile(r"```|~~~"), "a code block"),
    (re.compile(r"^\s*(def|class|import|from\s+\S+\s+import|#include|public\s+static|function)\b", re.M),
     "source code"),
    (re.compile(r"[{};]\s*$", re.M), "code-like line endings ({ } ;)"),
    (re.compile(r"</?[a-zA-Z][^>]*>"), "HTML/XML tags"),
    (re.compile(r"\b\w+\([^)]*\)\s*[;{]|==|!=|=>|->|\+\+|&&|\|\|"), "code operators"),
]
_TABLE = re.compile(r"^\s*\|.*\|\s*$|^\s*[-:| ]{3,}\|", re.M)
_MATH = [
    (re.compile(r"\$[^$]+\$|\\\(|\\\[|\\frac|\\sum|\\int|\\sqrt"), "LaTeX math"),
    (re.compile(r"\d\s*[\^*/=<>]\s*\(?\d|[a-z]\s*\^\s*\d|\b[xyz]\s*[=+\-*/]\s*\d"), "math notation"),
    (re.compile(r"[∑∫√≤≥≠±×÷∞∂]"), "math symbols"),
]
_URL = re.compile(r"https?://|www\.\S+|\S+@\S+\.\w+")


def unsuited_for_speech(text: str, max_words: int = 200) -> str | None:
    """None when ``text`` can be read aloud; else what makes it unsuitable (code, table, math, URL, length)."""
    if not text or not text.strip():
        return "empty text"
    for rx, what in _CODE:
        if rx.search(text):
            return f"contains {what}"
    if _TABLE.search(text):
        return "contains a table"
    for rx, what in _MATH:
        if rx.search(text):
            return f"contains {what}"
    if _URL.search(text):
        return "contains a URL or e-mail address"
    n = len(text.split())
    if n > max_words:
        return f"too long to speak ({n} words > {max_words}; raise max_words to keep it)"
    return None


_MD = [(re.compile(r"\*\*|__|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)|`|#+\s"), ""),
       (re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.M), ""), (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1")]
_ABBR = {"e.g.": "for example", "i.e.": "that is", "etc.": "and so on", "vs.": "versus", "&": "and", "%": " percent"}


def clean_for_speech(text: str) -> str:
    """Strip markdown and expand symbols a TTS engine would spell out; list items become sentences."""
    s = text or ""
    for rx, rep in _MD:
        s = rx.sub(rep, s)
    for k, v in _ABBR.items():
        s = s.replace(k, v)
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    lines = [ln if ln[-1] in ".!?:" else ln + "." for ln in lines]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


_SENT = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """Sentence split on end punctuation; unpunctuated transcripts (LibriSpeech) are one sentence."""
    return [s.strip() for s in _SENT.split(text or "") if s.strip()]


# --- grounding ----------------------------------------------------------------------------------
STOPWORDS = set("""a an the and or but if of to in on at by for with from as is are was were be been it its this
that these those there here he she they we you i me my your our their his her them us not no so than then
when what which who whom how why where do does did can could would should will shall may might must have has
had into over under about after before up down out off very just also""".split())


def content_words(text: str) -> list[str]:
    return [w for w in normalized_words(text) if w not in STOPWORDS]


def grounding(answer: str, transcript: str) -> float:
    """Share of the answer's content words found in the transcript (1.0 = fully lexically grounded)."""
    words = content_words(answer)
    if not words:
        return 0.0
    vocab = set(normalized_words(transcript))
    return sum(w in vocab for w in words) / len(words)


# --- model replies ------------------------------------------------------------------------------------
_WORD = re.compile(r"^[(\"']*[A-Za-z][A-Za-z'’-]*[.,;:!?\")']*$")


def reply_problem(text: str, min_words: int = 1, max_words: int = 60) -> str | None:
    """None when a model reply reads as a plain English sentence of ``min_words``..``max_words`` words; else why not.

    English-looking: >= 85% of the words are letter words (a number or two may pass), >= 70% of the non-space
    characters are letters, no word repeated 3 times in a row, no 3-word phrase said 3 times, and a reply of
    5+ words has at least one English function word.
    """
    words = (text or "").split()
    if not min_words <= len(words) <= max_words:
        return f"{len(words)} words (wanted {min_words}-{max_words})"
    chars = "".join(words)
    if sum(c.isalpha() for c in chars) < 0.7 * len(chars):
        return "mostly not letters"
    if sum(bool(_WORD.match(w)) or w.strip(".,;:!?").isdigit() for w in words) < 0.85 * len(words):
        return "does not read as English words"
    low = [w.strip(".,;:!?\"'").lower() for w in words]
    if any(low[i] == low[i + 1] == low[i + 2] for i in range(len(low) - 2)):
        return "repeats a word"
    grams = [" ".join(low[i:i + 3]) for i in range(len(low) - 2)]
    if grams and max(grams.count(g) for g in grams) >= 3:
        return "repeats itself"
    if len(low) >= 5 and not STOPWORDS.intersection(low):
        return "has no English function words"
    return None


def copies(text: str, source: str, min_source_words: int = 5) -> bool:
    """True when ``text`` contains all of ``source`` (normalized words, in order) and the source is not tiny."""
    t, s = " ".join(normalized_words(text)), " ".join(normalized_words(source))
    return len(s.split()) >= min_source_words and f" {s} " in f" {t} "


NEGATIONS = {"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "cannot"}


def negations(text: str) -> set[str]:
    """The negation words of ``text`` (``n't`` counts as ``not``): an answer that adds one contradicts its source."""
    words = [w.strip(".,;:!?\"'").lower() for w in (text or "").split()]
    return {"not" if w.endswith("n't") else w for w in words if w in NEGATIONS or w.endswith("n't")}


def focus_words(text: str, n: int) -> list[str]:
    """``n`` distinct content words of ``text`` (longest first, ties in reading order), cycled if too few."""
    seen: list[str] = []
    for w in content_words(text):
        if len(w) >= 3 and w.isalpha() and w not in seen:
            seen.append(w)
    order = sorted(seen, key=lambda w: (-len(w), seen.index(w)))
    return [order[i % len(order)] for i in range(n)] if order else [""] * n


# --- near-duplicate questions -----------------------------------------------------------------------
def hashed_ngrams(texts: Sequence[str], n: int = 3, dim: int = 2048) -> np.ndarray:
    """L2-normalised hashed character n-gram counts: a model-free embedding that is stable across runs."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        s = f" {re.sub(r'[^a-z0-9 ]', '', (t or '').lower())} "
        for j in range(max(1, len(s) - n + 1)):
            out[i, zlib.crc32(s[j:j + n].encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-9)


def near_duplicates(texts: Sequence[str], threshold: float = 0.9) -> dict[int, tuple[int, float]]:
    """{index: (index of the earlier text it duplicates, cosine)} for texts whose cosine >= threshold.

    faiss inner-product search on the hashed n-gram embeddings; the first occurrence is kept.
    """
    if len(texts) < 2:
        return {}
    import faiss

    emb = hashed_ngrams(texts)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    k = min(len(texts), 16)
    sims, ids = index.search(emb, k)
    dup: dict[int, tuple[int, float]] = {}
    for i in range(len(texts)):
        for s, j in zip(sims[i], ids[i]):
            if 0 <= j < i and j not in dup and s >= threshold:
                dup[i] = (int(j), float(s))
                break
    return dup
