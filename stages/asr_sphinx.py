"""The ``pocketsphinx`` ASR backend (offline default: the package ships an English acoustic model,
dictionary and LM).

Confidence is the mean word posterior of the best path (``Segment.prob``). About 0.2-0.4 WER on real read
speech and much worse on synthetic voices: good enough to align and interleave, not to train ASR on.
Decoding (dither, per-row reset, fillers) is the shared wrapper in ``stages/sphinx.py``.
"""
from __future__ import annotations

import numpy as np

from .asr import AsrBackend
from .sphinx import Sphinx


class PocketsphinxAsr(AsrBackend):
    """pocketsphinx with its bundled English model (offline); confidence = mean word posterior."""

    name = "pocketsphinx"

    def __init__(self, hmm: str | None = None, lm: str | None = None, dictionary: str | None = None,
                 dither: float = 1e-3, seed: int = 0, model_path: str | None = None):
        # a recipe's generic model_path names the acoustic model directory
        self.sphinx = Sphinx(hmm or model_path, dictionary, dither=dither, seed=seed, cmn="batch",
                             **({"lm": lm} if lm else {}))

    def transcribe(self, wav: np.ndarray) -> tuple[str, float, list[dict] | None]:
        self.sphinx.decode(self.sphinx.pcm16(wav))
        text, segs = self.sphinx.hypothesis(), self.sphinx.segments()
        if text is None or not segs:
            return "", 0.0, None
        conf = float(np.mean([min(1.0, s.prob) for s in segs]))
        return text, conf, None
