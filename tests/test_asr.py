"""ASR stage: pocketsphinx on real LibriVox speech, confidence routing, openai-whisper request/response handling.

Models: pocketsphinx's bundled English model. openai-whisper is not installed: its backend (`openai-whisper`) is
tested by faking only the model object (its ``transcribe`` returns a Whisper-shaped dict); the real
backend's missing-package error is tested too.
"""
from __future__ import annotations

import jiwer
import numpy as np
import pytest

from slmfactory.stages.align import AlignStage
from slmfactory.stages.asr import AsrStage
from slmfactory.stages.asr_whisper import WhisperAsr
from slmfactory.stages.textnorm import normalize_text


@pytest.fixture(scope="module")
def ps_asr():
    return AsrStage(backend="pocketsphinx", min_confidence=0.0)


def test_pocketsphinx_transcribes_rows_without_text(librivox, ps_asr):
    """WER on the real clips is about 0.3 (measured); rows that had text keep it untouched."""
    ids = [p.stem for p, _ in librivox] + ["has_text"]
    out = ps_asr({"id": ids, "audio_path": [str(p) for p, _ in librivox] + [str(librivox[0][0])],
                  "text": [None] * len(librivox) + ["Given Text, kept."]})
    assert out["error"] == [None] * len(ids)
    refs = [normalize_text(t) for _, t in librivox]
    hyps = [normalize_text(t) for t in out["text"][:-1]]
    wer = jiwer.wer(refs, hyps)
    assert wer <= 0.45, (wer, hyps)
    assert out["text"][-1] == "Given Text, kept." and out["asr_backend"][-1] is None and out["asr_confidence"][-1] is None
    confs = out["asr_confidence"][:-1]
    assert set(out["asr_backend"][:-1]) == {"pocketsphinx"} and all(0.0 < c <= 1.0 for c in confs)
    # deterministic
    again = ps_asr({"id": ids[:1], "audio_path": [str(librivox[0][0])], "text": [None]})
    assert again["text"][0] == out["text"][0] and again["asr_confidence"][0] == out["asr_confidence"][0]


def test_low_confidence_and_silence_go_to_errors(librivox, ps_asr):
    strict = AsrStage(model=ps_asr.backend, min_confidence=0.999)
    out = strict({"id": ["a", "silence"], "audio": [None, np.zeros(16000, np.float32)],
                  "audio_path": [str(librivox[1][0]), "silence.wav"], "text": [None, None]})
    assert len(out["id"]) == 2
    assert "min_confidence" in out["error"][0] and out["text"][0]  # the unreliable transcript is kept for review
    assert out["error_stage"][0] == "asr"
    assert "silence.wav" in out["error"][1]


def test_whisper_missing_package_says_how_to_install():
    import importlib.util

    if importlib.util.find_spec("whisper") is not None:
        pytest.skip("openai-whisper is installed here")
    with pytest.raises(ImportError, match="pip install openai-whisper"):
        WhisperAsr(model_path="/nonexistent/medium.pt")


class FakeWhisperModel:
    """Only the model object is fake: it records the request and answers in Whisper's result format."""

    def __init__(self, probs):
        self.calls = []
        self.probs = probs

    def transcribe(self, audio, **kw):
        self.calls.append((len(audio), kw))
        words = [{"word": " Hello,", "start": 0.1, "end": 0.4, "probability": self.probs[0]},
                 {"word": " World!", "start": 0.5, "end": 0.9, "probability": self.probs[1]}]
        return {"text": " Hello, World!", "segments": [{"avg_logprob": -0.2, "words": words}], "language": "en"}


def test_whisper_request_and_response_handling():
    fake = FakeWhisperModel([0.9, 0.7])
    stage = AsrStage(backend="openai-whisper", model=fake, min_confidence=0.5)
    out = stage({"id": ["a"], "audio": [np.zeros(8000, np.float32)], "text": [None]})
    n, kw = fake.calls[0]
    assert n == 8000 and kw["word_timestamps"] is True and kw["fp16"] is False and kw["language"] == "en"
    assert out["text"] == ["Hello, World!"] and out["asr_backend"] == ["openai-whisper"]
    assert out["asr_confidence"][0] == pytest.approx(0.8)
    assert [w["word"] for w in out["words"][0]] == ["hello", "world"] and out["aligner"] == ["openai-whisper"]
    # the align stage keeps Whisper's word times instead of re-aligning
    kept = AlignStage(aligner=object())(out)
    assert kept["words"] == out["words"] and kept["error"] == [None]
    low = AsrStage(backend="openai-whisper", model=FakeWhisperModel([0.2, 0.3]), min_confidence=0.5)(
        {"id": ["b"], "audio": [np.zeros(8000, np.float32)], "text": [None]})
    assert "min_confidence" in low["error"][0]


def test_asr_backends_come_from_the_registry():
    from slmfactory.manifests.registry import ASR_BACKENDS, UnknownName
    from slmfactory.stages.asr import AsrBackend
    from slmfactory.stages.asr_sphinx import PocketsphinxAsr

    assert ASR_BACKENDS.load("pocketsphinx") is PocketsphinxAsr and issubclass(WhisperAsr, AsrBackend)
    with pytest.raises(UnknownName, match="Did you mean 'whisper'"):
        AsrStage(backend="whisperr")
