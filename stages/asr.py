"""ASR for rows without a transcript (LibriLight, podcasts): fills ``text`` only where it is null.

Backends derive from :class:`AsrBackend` (``transcribe_batch(wavs) -> [Transcript]``, or the one-row
``transcribe(wav) -> (text, confidence, words or None)``) and are registered by name in ``ASR_BACKENDS``
(``manifests/registry.py``):

* ``whisper`` (default), ``stages/asr_faster_whisper.py``: faster-whisper (CTranslate2) with the bundled
  tiny.en or any local CTranslate2 Whisper folder; batched, word timestamps become the ``words`` column (the
  ``align`` stage keeps them).
* ``openai-whisper``, ``stages/asr_whisper.py``: a local openai-whisper ``.pt`` checkpoint.
* ``pocketsphinx``, ``stages/asr_sphinx.py``: the smallest offline fallback (WER ~0.3 on read speech).

Adds ``asr_backend``, ``asr_confidence`` (and ``asr_no_speech_prob`` from Whisper). Transcripts that are
empty, under ``min_confidence`` or look hallucinated (:func:`suspect`: an n-gram looping, a high gzip
compression ratio, a high no-speech probability with little text, a speaking rate far outside speech) go
to ``errors`` with the measured value and the fix; the transcript is kept on the row for review. Rows that
already have text pass through untouched.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..manifests.audio import load_audio
from ..manifests.registry import ASR_BACKENDS
from .base import Row, Stage, reject
from .textnorm import normalized_words

SAMPLE_RATE = 16000


@dataclass
class Transcript:
    """One segment's ASR result. ``words``: dicts {word, start, end, score}, seconds from the segment start."""

    text: str
    confidence: float
    words: list[dict] | None = None
    no_speech_prob: float | None = None


class AsrBackend:
    """Base of every ASR backend: a subclass sets ``name`` (its registry name) and ``transcribe`` or
    ``transcribe_batch`` (each default calls the other)."""

    name: str

    @property
    def label(self) -> str:
        """What the ``asr_backend`` column records (backend, plus the model where there is a choice)."""
        return self.name

    def transcribe(self, wav: np.ndarray) -> tuple[str, float, list[dict] | None]:
        """16 kHz mono float32 -> (text, confidence in [0, 1], word dicts {word, start, end, score} or None)."""
        if type(self).transcribe_batch is AsrBackend.transcribe_batch:
            raise NotImplementedError(f"{type(self).__name__} implements neither transcribe nor transcribe_batch")
        t = self.transcribe_batch([wav])[0]
        return t.text, t.confidence, t.words

    def transcribe_batch(self, wavs: list[np.ndarray]) -> list[Transcript]:
        """Several segments at once (batched where the backend can); one :class:`Transcript` per input."""
        return [Transcript(*self.transcribe(w)) for w in wavs]


def max_ngram_repeats(words: list[str], max_n: int = 4) -> tuple[int, str]:
    """The most consecutive repetitions of any 1..max_n-gram and that n-gram ("a b a b a b" -> (3, "a b"))."""
    best, what = 1 if words else 0, " ".join(words[:1])
    for n in range(1, max_n + 1):
        for i in range(len(words) - 2 * n + 1):
            k = 1
            while words[i + k * n: i + (k + 1) * n] == words[i: i + n]:
                k += 1
            if k > best:
                best, what = k, " ".join(words[i: i + n])
    return best, what


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetitive text: bytes / zlib-compressed bytes (loops compress well)."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


def suspect(text: str, seconds: float, no_speech_prob: float | None, max_repeats: int = 4,
            max_compression_ratio: float = 2.4, max_no_speech_prob: float = 0.6, min_wps: float = 0.3,
            max_wps: float = 7.0) -> str | None:
    """Why the transcript of a ``seconds``-long segment looks hallucinated (a reason with the value and the
    parameter to change), or None."""
    words = normalized_words(text)
    wps = len(words) / max(seconds, 1e-3)
    reps, gram = max_ngram_repeats(words)
    if reps > max_repeats:
        return (f"{gram!r} repeats {reps} times in a row (max_repeats {max_repeats}): a decoding loop; "
                f"raise max_repeats only if the speech really repeats")
    cr = compression_ratio(text)
    if cr > max_compression_ratio:
        return (f"gzip compression ratio {cr:.2f} > max_compression_ratio {max_compression_ratio}: repetitive "
                f"text, a decoding loop")
    if no_speech_prob is not None and no_speech_prob > max_no_speech_prob and wps < 1.5:
        return (f"no-speech probability {no_speech_prob:.2f} > max_no_speech_prob {max_no_speech_prob} with "
                f"only {len(words)} words in {seconds:.1f} s: text invented over silence, noise or music; check "
                f"the VAD settings")
    if wps > max_wps:
        return (f"{wps:.1f} words/s > max_wps {max_wps} (speech is ~2-4): more words than the audio can hold")
    if seconds >= 2.0 and wps < min_wps:
        return (f"{wps:.2f} words/s < min_wps {min_wps} over {seconds:.1f} s: the segment is mostly not speech "
                f"(music, noise?); tighten the VAD or lower min_wps")
    return None


class AsrStage(Stage):
    """Transcribes rows whose ``text`` is null (Whisper by default); adds ``asr_backend``, ``asr_confidence``, ``words``.

    Empty, low-confidence or hallucinated transcripts (:func:`suspect`) send the row to errors with the reason.
    """

    name = "asr"

    def __init__(self, backend: str = "whisper", min_confidence: float = 0.3, model: Any = None,
                 max_repeats: int = 4, max_compression_ratio: float = 2.4, max_no_speech_prob: float = 0.6,
                 min_wps: float = 0.3, max_wps: float = 7.0, **backend_params: Any):
        if model is not None and hasattr(model, "name") and hasattr(model, "transcribe_batch"):
            self.backend = model  # a ready backend object
        else:
            self.backend = ASR_BACKENDS.load(backend)(**({"model": model} if model is not None else {}), **backend_params)
        self.min_confidence = float(min_confidence)
        self.checks = {"max_repeats": int(max_repeats), "max_compression_ratio": float(max_compression_ratio),
                       "max_no_speech_prob": float(max_no_speech_prob), "min_wps": float(min_wps),
                       "max_wps": float(max_wps)}

    def process(self, rows: list[Row]) -> list[Row]:
        todo, wavs = [], []
        for row in rows:
            if row.get("text") is not None and str(row["text"]).strip():
                continue
            wav = row.get("audio")
            if wav is None:
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            todo.append(row)
            wavs.append(np.asarray(wav, dtype=np.float32))
        results = self.backend.transcribe_batch(wavs) if todo else []
        label = getattr(self.backend, "label", self.backend.name)
        for row, wav, res in zip(todo, wavs, results):
            self._fill(row, len(wav) / SAMPLE_RATE, res, label)
        return rows

    def _fill(self, row: Row, seconds: float, res: Transcript, label: str) -> None:
        where = row.get("audio_path") or row.get("id")
        text, conf = (res.text or "").strip(), float(res.confidence)
        row["asr_backend"], row["asr_confidence"] = label, round(conf, 4)
        if res.no_speech_prob is not None:
            row["asr_no_speech_prob"] = round(float(res.no_speech_prob), 4)
        if not normalized_words(text):
            reject(row, self.name, f"{where}: ASR ({label}) heard no words in {seconds:.1f} s; the segment may be "
                   f"silence or music; check VAD settings")
            return
        row["text"] = text
        if res.words:
            row["words"] = res.words
            row["aligner"] = label
        why = suspect(text, seconds, res.no_speech_prob, **self.checks)
        if why:
            reject(row, self.name, f"{where}: ASR ({label}) transcript {text[:60]!r} looks hallucinated: {why}")
        elif conf < self.min_confidence:
            reject(row, self.name, f"{where}: ASR confidence {conf:.2f} < min_confidence {self.min_confidence}; "
                   f"the transcript {text[:40]!r} is unreliable (noisy or non-English audio?); lower "
                   f"min_confidence or use a stronger backend")
