"""ASR for rows without a transcript (LibriLight, podcasts): fills ``text`` only where it is null.

Backends (``transcribe(wav) -> (text, confidence, words or None)``):

* ``pocketsphinx`` (default, offline: ships an English acoustic model, dictionary and LM). Confidence is the
  mean word posterior of the best path (``Segment.prob``). About 0.2-0.4 WER on real read speech and much
  worse on synthetic voices: good enough to align and interleave, not to train ASR on.
* ``whisper`` (openai-whisper; ``model_path`` = a local ``.pt`` checkpoint you downloaded yourself). Imported
  lazily; word timestamps become the ``words`` column (the ``align`` stage keeps them). Confidence is the
  mean word probability.

Adds ``asr_backend`` and ``asr_confidence`` to transcribed rows; rows under ``min_confidence`` or with an
empty transcript go to ``errors``. Rows that already have text pass through untouched.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..manifests.audio import load_audio
from .base import Row, Stage, reject
from .textnorm import normalize_text

FILLERS = ("<", "[", "+")


class PocketsphinxAsr:
    name = "pocketsphinx"

    def __init__(self, hmm: str | None = None, lm: str | None = None, dictionary: str | None = None,
                 dither: float = 1e-3, seed: int = 0, model_path: str | None = None):
        hmm = hmm or model_path  # a recipe's generic model_path names the acoustic model directory
        from pocketsphinx import Decoder

        kw: dict[str, Any] = {"loglevel": "FATAL", "cmn": "batch"}
        for k, v in (("hmm", hmm), ("lm", lm), ("dict", dictionary)):
            if v:
                kw[k] = v
        self.decoder = Decoder(**kw)
        self.dither, self.seed = dither, seed

    def transcribe(self, wav: np.ndarray) -> tuple[str, float, list[dict] | None]:
        noise = np.random.default_rng(self.seed).normal(0.0, self.dither, len(wav)).astype(np.float32)
        pcm = (np.clip(wav + noise, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        d = self.decoder
        d.reinit_feat()  # CMN/noise estimates carry over between utterances: reset so each row is independent
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        segs = [s for s in (d.seg() or []) if not s.word.startswith(FILLERS)]
        if hyp is None or not segs:
            return "", 0.0, None
        conf = float(np.mean([min(1.0, s.prob) for s in segs]))
        return hyp.hypstr.strip(), conf, None


class WhisperAsr:
    name = "whisper"

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


def make_asr(backend: str = "pocketsphinx", **kw: Any):
    if backend == "pocketsphinx":
        return PocketsphinxAsr(**kw)
    if backend == "whisper":
        return WhisperAsr(**kw)
    raise ValueError(f"unknown ASR backend {backend!r}; use 'pocketsphinx' or 'whisper'")


class AsrStage(Stage):
    """Transcribes rows whose ``text`` is null; adds ``asr_backend``, ``asr_confidence`` (and ``words`` from Whisper)."""

    name = "asr"

    def __init__(self, backend: str = "pocketsphinx", min_confidence: float = 0.3, model: Any = None, **backend_params: Any):
        self.backend = model if model is not None and hasattr(model, "transcribe") and hasattr(model, "name") else \
            make_asr(backend, **({"model": model} if model is not None else {}), **backend_params)
        self.min_confidence = float(min_confidence)

    def process(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            if row.get("text") is not None and str(row["text"]).strip():
                continue
            where = row.get("audio_path") or row.get("id")
            wav = row.get("audio")
            if wav is None:
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            text, conf, words = self.backend.transcribe(np.asarray(wav, dtype=np.float32))
            row["asr_backend"] = self.backend.name
            row["asr_confidence"] = round(conf, 4)
            if not text:
                reject(row, self.name, f"{where}: ASR ({self.backend.name}) heard no words; the segment may be "
                       f"silence or music; check VAD settings")
                continue
            row["text"] = text
            if words:
                row["words"] = words
                row["aligner"] = self.backend.name
            if conf < self.min_confidence:
                reject(row, self.name, f"{where}: ASR confidence {conf:.2f} < min_confidence {self.min_confidence}; "
                       f"the transcript {text[:40]!r} is unreliable (noisy or non-English audio?); lower "
                       f"min_confidence or use a stronger backend")
        return rows
