"""The ``pocketsphinx`` aligner: ``set_align_text`` with the bundled English model (offline default).

Why words missing from the dictionary are timed between their aligned neighbours (score 0) instead of
failing the row: a long transcript almost always has a name or a rare word, and one unknown word should
not cost the whole segment its word times; the share of such words counts against ``min_coverage``.
Decoding (dither, per-row reset, fillers) is the shared wrapper in ``stages/sphinx.py``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..manifests.schema import TARGET_SAMPLE_RATE
from .align import Aligner, AlignmentError, Word, fill_unaligned
from .sphinx import Sphinx


class PocketsphinxAligner(Aligner):
    """pocketsphinx forced alignment (bundled US English model, or ``hmm``/``dictionary`` paths you give)."""

    name = "pocketsphinx"

    def __init__(self, hmm: str | None = None, dictionary: str | None = None, dither: float = 1e-3,
                 seed: int = 0, model_path: str | None = None):
        # a recipe's generic model_path names the acoustic model directory
        self.sphinx = Sphinx(hmm or model_path, dictionary, dither=dither, seed=seed, lm=None, cmn="batch")

    @property
    def label(self) -> str:
        return "pocketsphinx:" + self.sphinx.model_name

    def in_vocab(self, word: str) -> bool:
        return self.sphinx.in_vocab(word)

    def align(self, wav: np.ndarray, words: Sequence[str]) -> tuple[list[Word], float]:
        known = [i for i, w in enumerate(words) if self.in_vocab(w)]
        coverage = len(known) / max(1, len(words))
        if not known:
            raise AlignmentError(f"none of the {len(words)} words is in the pocketsphinx dictionary; "
                                 f"check the transcript's language or pass a `dictionary`")
        try:
            segs = self.sphinx.align([words[i] for i in known], self.sphinx.pcm16(wav))
        except RuntimeError as e:
            raise AlignmentError(f"pocketsphinx alignment failed ({e}); the audio may not contain this transcript") from e
        if segs is None:
            raise AlignmentError("pocketsphinx found no alignment (no segmentation): the audio does not match "
                                 "the transcript, is too short for it, or is silent")
        if len(segs) != len(known):
            raise AlignmentError(f"pocketsphinx aligned {len(segs)} words of {len(known)}; the transcript "
                                 f"does not match the audio")
        aligned: dict[int, tuple[float, float, float]] = {}
        for idx, s in zip(known, segs):
            nframes = max(1, s.end_frame - s.start_frame + 1)
            # ascore is a likelihood in linear scale; its per-frame geometric mean is a usable relative score
            score = float(np.exp(np.log(max(s.ascore, 1e-300)) / nframes)) if s.ascore > 0 else 0.0
            aligned[idx] = (s.start, s.end, score)
        return fill_unaligned(words, aligned, len(wav) / TARGET_SAMPLE_RATE), coverage

    def align_batch(self, wavs: Sequence[np.ndarray], word_lists: Sequence[Sequence[str]]) -> list[Any]:
        out: list[Any] = []
        for wav, words in zip(wavs, word_lists):
            try:
                out.append(self.align(wav, words))
            except AlignmentError as e:
                out.append(e)
        return out
