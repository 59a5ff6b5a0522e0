"""Forced alignment: word-level timestamps (``words``: list of {word, start, end, score}) for each segment.

Why: interleaving speech and text at word boundaries needs to know where every word is in the audio.
Times are seconds relative to the segment (its ``start`` in the source file is 0 here).

Backends derive from :class:`Aligner` (one interface, ``align_batch(wavs, word_lists) -> list[(words,
coverage) | AlignmentError]``) and are registered by name in ``ALIGNERS`` (``manifests/registry.py``):

* ``pocketsphinx`` (default, offline: the package ships an English acoustic model and dictionary),
  ``stages/align_sphinx.py``.
* ``ctc``: a CTC acoustic model from a LOCAL checkpoint directory, ``stages/align_ctc.py``.

Rows whose alignment fails, or aligns fewer than ``min_coverage`` of the transcript's words, go to
``errors`` with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..manifests.audio import load_audio
from ..manifests.registry import ALIGNERS
from ..manifests.schema import TARGET_SAMPLE_RATE
from .base import Row, Stage, reject
from .textnorm import normalized_words


class AlignmentError(ValueError):
    """Alignment produced nothing usable for this row; the message says why and what to try."""


@dataclass
class Word:
    word: str
    start: float
    end: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"word": self.word, "start": round(float(self.start), 4), "end": round(float(self.end), 4),
                "score": round(float(self.score), 4)}


def fill_unaligned(words: Sequence[str], aligned: dict[int, tuple[float, float, float]], duration: float) -> list[Word]:
    """Give words without an alignment the gap between their aligned neighbours (score 0), in order."""
    out: list[Word] = []
    n, i = len(words), 0
    while i < n:
        if i in aligned:
            s, e, sc = aligned[i]
            out.append(Word(words[i], s, e, sc))
            i += 1
            continue
        j = i
        while j < n and j not in aligned:
            j += 1
        left = out[-1].end if out else 0.0
        right = aligned[j][0] if j < n else duration
        right = max(right, left)
        step = (right - left) / (j - i)
        for k in range(i, j):
            out.append(Word(words[k], left + (k - i) * step, left + (k - i + 1) * step, 0.0))
        i = j
    return out


def tighten_to_voice(words: list[Word], wav: np.ndarray, below_peak_db: float = 45.0,
                     frame_s: float = 0.01) -> list[Word]:
    """Shrink each word to the frames inside it that carry sound (energy within ``below_peak_db`` of the
    segment's loud frames). Why: HMM and CTC aligners let a word swallow the pause after it; a word's span
    should be where it is spoken. Words never grow, and a word with no loud frame keeps its span."""
    hop = int(frame_s * TARGET_SAMPLE_RATE)
    n = len(wav) // hop
    if n == 0:
        return words
    frames = wav[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10.0 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    loud = db > (np.percentile(db, 95) - below_peak_db)
    out = []
    for w in words:
        a, b = int(w.start / frame_s), min(n, int(np.ceil(w.end / frame_s)))
        idx = np.flatnonzero(loud[a:b])
        if idx.size and w.score > 0:
            out.append(Word(w.word, max(w.start, (a + idx[0]) * frame_s), min(w.end, (a + idx[-1] + 1) * frame_s), w.score))
        else:
            out.append(w)
    return out


class Aligner:
    """Base of every aligner backend: a subclass sets ``name`` (its registry name) and ``align_batch``."""

    name: str

    @property
    def label(self) -> str:
        """What the ``aligner`` column records (backend plus model, e.g. ``pocketsphinx:en-us``)."""
        return self.name

    def align_batch(self, wavs: Sequence[np.ndarray],
                    word_lists: Sequence[Sequence[str]]) -> list[tuple[list[Word], float] | AlignmentError]:
        """Per row: (one Word per given word, in order; share of words really aligned) or the error."""
        raise NotImplementedError


class AlignStage(Stage):
    """Adds ``words`` and ``aligner``. Rows that already carry ``words`` (e.g. from Whisper) pass through
    unless ``overwrite``."""

    name = "align"

    def __init__(self, backend: str = "pocketsphinx", model_path: str | None = None, min_coverage: float = 0.8,
                 overwrite: bool = False, tighten: bool = True, aligner: Any = None, **backend_params: Any):
        if aligner is None:
            aligner = ALIGNERS.load(backend)(model_path=model_path, **backend_params)
        self.aligner = aligner
        self.min_coverage = float(min_coverage)
        self.overwrite = overwrite
        self.tighten = tighten

    def process(self, rows: list[Row]) -> list[Row]:
        todo, wavs, words = [], [], []
        for i, row in enumerate(rows):
            if row.get("words") and not self.overwrite:
                continue
            where = row.get("audio_path") or row.get("id")
            ws = (row.get("text_normalized") or "").split() or normalized_words(row.get("text"))
            if not ws:
                reject(row, self.name, f"{where}: no transcript to align; add an `asr` stage or supply text")
                continue
            wav = row.get("audio")
            if wav is None:
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            todo.append(i)
            wavs.append(np.asarray(wav, dtype=np.float32))
            words.append(ws)
        results = self.aligner.align_batch(wavs, words) if todo else []
        for i, wav, res in zip(todo, wavs, results):
            row, where = rows[i], rows[i].get("audio_path") or rows[i].get("id")
            if isinstance(res, Exception):
                reject(row, self.name, f"{where}: {res}")
                continue
            aligned, coverage = res
            if self.tighten:
                aligned = tighten_to_voice(aligned, wav)
            if coverage < self.min_coverage:
                reject(row, self.name, f"{where}: only {coverage:.0%} of {len(aligned)} words could be aligned "
                       f"(min_coverage {self.min_coverage:.0%}); check the transcript or lower min_coverage")
                continue
            row["words"] = [w.as_dict() for w in aligned]
            row["aligner"] = self.aligner.label
        return rows
