"""The ``whisper`` ASR backend (the default): faster-whisper (CTranslate2) with the bundled Whisper tiny.en.

``model_path`` = any local CTranslate2 Whisper folder (``model.bin`` + ``config.json`` + tokenizer, e.g. made
with ``ct2-transformers-converter``); unset = the bundled tiny.en (``manifests/models.py``). Nothing is
downloaded. Loaded once per (folder, device, compute type, threads) per process, so every stage instance of
a worker shares it.

* Batched: segments up to 30 s go through ``BatchedInferencePipeline`` together, ``batch_size`` at a time (one
  encoder/decoder call per batch, each segment its own 30 s window); ``batched=False`` decodes them one by
  one. Longer segments are cut at pauses by faster-whisper's bundled Silero VAD and their chunks batched.
* Confidence = exp(mean token log-probability), the segments' ``avg_logprob`` weighted by their token counts
  (the per-token geometric mean probability Whisper's own fallback rule uses, -1 -> 0.37); ``no_speech_prob``
  (mean over the segment's windows) is returned too, for the hallucination checks in ``stages/asr.py``.
* Word timestamps -> ``words``: normalized with ``stages/textnorm.py`` (a word that normalizes to several,
  "1984", is split evenly over its span), times in seconds from the segment start, score = word probability.
"""
from __future__ import annotations

import bisect
import functools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..manifests.models import bundled
from .asr import SAMPLE_RATE, AsrBackend, Transcript
from .textnorm import normalize_text

WINDOW_S = 30.0  # Whisper's input window


@functools.lru_cache(maxsize=4)
def load_model(path: str, device: str, compute_type: str, cpu_threads: int) -> Any:
    """One ``WhisperModel`` per (folder, device, compute type, threads) per process."""
    from faster_whisper import WhisperModel

    return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                        local_files_only=True)


def resolve_model_path(model_path: str | os.PathLike | None) -> tuple[str, str]:
    """(local CTranslate2 folder, the name the ``asr_backend`` column records)."""
    if not model_path:
        return str(bundled("whisper-tiny.en").path()), "whisper-tiny.en"
    p = Path(model_path)
    if p.is_file() and p.suffix == ".pt":
        raise FileNotFoundError(f"whisper: {p} is an openai-whisper checkpoint; use `backend: openai-whisper` for "
                                f".pt files, or convert it with ct2-transformers-converter")
    if not (p / "model.bin").is_file():
        raise FileNotFoundError(f"whisper: model_path {str(p)!r} is not a local CTranslate2 Whisper folder "
                                f"(model.bin, config.json, tokenizer.json); leave it unset for the bundled tiny.en "
                                f"(nothing is downloaded at run time)")
    return str(p), p.name


def split_words(text: str, start: float, end: float, prob: float) -> list[dict]:
    """One Whisper word -> normalized word dicts; several when it normalizes to several ("1984")."""
    parts = normalize_text(text).split()
    step = (end - start) / max(len(parts), 1)
    return [{"word": w, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3),
             "score": round(prob, 4)} for i, w in enumerate(parts)]


def to_transcript(segments: list[Any], offset: float, seconds: float) -> Transcript:
    """faster-whisper segments of one input -> :class:`Transcript` (word times relative to ``offset``)."""
    text = "".join(s.text for s in segments).strip()
    n_tok = [max(len(s.tokens), 1) for s in segments]
    lp = sum(s.avg_logprob * n for s, n in zip(segments, n_tok)) / sum(n_tok) if segments else -math.inf
    nsp = float(np.mean([s.no_speech_prob for s in segments])) if segments else None
    words = []
    for s in segments:
        for w in s.words or []:
            a = min(max(float(w.start) - offset, 0.0), seconds)
            b = min(max(float(w.end) - offset, a), seconds)
            words += split_words(w.word, a, b, float(w.probability))
    return Transcript(text, float(math.exp(lp)) if segments else 0.0, words or None, nsp)


class FasterWhisperAsr(AsrBackend):
    """faster-whisper, default model the bundled tiny.en (or a local CTranslate2 folder); batched, word times."""

    name = "whisper"

    def __init__(self, model_path: str | None = None, device: str = "cpu", compute_type: str | None = None,
                 cpu_threads: int = 0, beam_size: int = 1, language: str | None = "en", batch_size: int = 8,
                 batched: bool = True, model: Any = None):
        path, self.model_name = resolve_model_path(model_path) if model is None else ("", "custom")
        compute_type = compute_type or ("float16" if device.startswith("cuda") else "int8")
        self.model = model if model is not None else load_model(path, device, compute_type, int(cpu_threads))
        self.beam_size, self.language = int(beam_size), language or None
        self.batch_size, self.batched = max(1, int(batch_size)), bool(batched)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model_name}"

    def _options(self) -> dict:
        return {"language": self.language, "beam_size": self.beam_size, "word_timestamps": True}

    def transcribe_batch(self, wavs: list[np.ndarray]) -> list[Transcript]:
        wavs = [np.asarray(w, dtype=np.float32) for w in wavs]
        out: list[Transcript | None] = [None] * len(wavs)
        short = [i for i, w in enumerate(wavs) if 0 < len(w) <= WINDOW_S * SAMPLE_RATE]
        if self.batched and short:
            for i, t in zip(short, self._batched([wavs[i] for i in short])):
                out[i] = t
        else:
            for i in short:
                segs, _ = self.model.transcribe(wavs[i], vad_filter=False, condition_on_previous_text=False,
                                                temperature=0.0, **self._options())
                out[i] = to_transcript(list(segs), 0.0, len(wavs[i]) / SAMPLE_RATE)
        for i, w in enumerate(wavs):
            if out[i] is None and len(w) == 0:
                out[i] = Transcript("", 0.0)
            elif out[i] is None:  # longer than one window: cut at pauses (bundled Silero VAD), chunks batched
                out[i] = self._long(w)
        return out  # type: ignore[return-value]

    def _pipeline(self) -> Any:
        if not hasattr(self, "_pipe"):
            from faster_whisper import BatchedInferencePipeline

            self._pipe = BatchedInferencePipeline(self.model)
        return self._pipe

    def _batched(self, wavs: list[np.ndarray]) -> list[Transcript]:
        """Segments laid end to end, 0.1 s apart, each its own clip (one window per segment, never shared):
        the pipeline batches the windows; a result belongs to the clip it starts in."""
        gap = np.zeros(SAMPLE_RATE // 10, np.float32)
        starts = [float(x) / SAMPLE_RATE for x in np.cumsum([0] + [len(w) + len(gap) for w in wavs[:-1]])]
        clips = [{"start": a, "end": a + len(w) / SAMPLE_RATE} for a, w in zip(starts, wavs)]
        audio = np.concatenate([x for w in wavs for x in (w, gap)])
        segs, _ = self._pipeline().transcribe(audio, clip_timestamps=clips, batch_size=self.batch_size,
                                              **self._options())
        per: list[list[Any]] = [[] for _ in wavs]
        for s in segs:  # starts are exact to a sample and rounded to 1 ms; rows are 100 ms apart
            per[max(0, bisect.bisect_right(starts, float(s.start) + 0.05) - 1)].append(s)
        return [to_transcript(p, starts[i], len(wavs[i]) / SAMPLE_RATE) for i, p in enumerate(per)]

    def _long(self, wav: np.ndarray) -> Transcript:
        seconds = len(wav) / SAMPLE_RATE
        if self.batched:
            segs, _ = self._pipeline().transcribe(wav, vad_filter=True, batch_size=self.batch_size, **self._options())
        else:
            segs, _ = self.model.transcribe(wav, vad_filter=True, condition_on_previous_text=False, temperature=0.0,
                                            **self._options())
        return to_transcript(list(segs), 0.0, seconds)
