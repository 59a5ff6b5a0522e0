"""The ``openai-whisper`` ASR backend (openai-whisper; ``model_path`` = a local ``.pt`` checkpoint you downloaded).

Imported only when used. Word timestamps become the ``words`` column, their text normalized with the one
normalizer (``stages/textnorm.py``) so they match what the aligners would produce; confidence is the mean
word probability (the segments' average log-probability when there are no word timings).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .asr import AsrBackend
from .textnorm import normalize_text


class WhisperAsr(AsrBackend):
    """openai-whisper from a local checkpoint; adds word timestamps (``words``)."""

    name = "openai-whisper"

    def __init__(self, model_path: str | None = None, language: str | None = "en", model: Any = None,
                 device: str = "cpu"):
        if model is None:
            try:
                import whisper  # openai-whisper
            except ImportError as e:
                raise ImportError("the whisper ASR backend needs openai-whisper: `pip install openai-whisper`, then "
                                  "give `model_path` a local checkpoint (e.g. medium.pt)") from e
            if not model_path or not os.path.isfile(model_path):
                raise FileNotFoundError(f"whisper: model_path {model_path!r} is not a local checkpoint file; "
                                        f"download e.g. medium.pt once and give its path (no downloads at run time)")
            model = whisper.load_model(model_path, device=device)
        self.model, self.language = model, language

    def transcribe(self, wav: np.ndarray) -> tuple[str, float, list[dict] | None]:
        res = self.model.transcribe(np.asarray(wav, dtype=np.float32), language=self.language, word_timestamps=True,
                                    fp16=False, temperature=0.0, condition_on_previous_text=False)
        words, probs = [], []
        for seg in res.get("segments", []):
            for w in seg.get("words") or []:
                words.append({"word": normalize_text(str(w["word"])), "start": float(w["start"]), "end": float(w["end"]),
                              "score": float(w.get("probability", 0.0))})
                probs.append(float(w.get("probability", 0.0)))
        text = str(res.get("text", "")).strip()
        if probs:
            conf = float(np.mean(probs))
        else:  # no word timings: fall back on the segments' average log-probability
            lps = [float(s.get("avg_logprob", -10.0)) for s in res.get("segments", [])]
            conf = float(np.exp(np.mean(lps))) if lps else 0.0
        return text, conf, [w for w in words if w["word"]] or None
