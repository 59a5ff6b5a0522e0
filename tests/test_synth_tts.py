"""TTS backends and the voice sampler. espeak-ng audio is generated at test time; coqui/piper are optional
extras that are not installed here, so only their loading error paths are tested."""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from slmfactory.manifests.generate import have_espeak
from slmfactory.synth.tts import TtsError, make_tts
from slmfactory.synth.tts_coqui import CoquiTts
from slmfactory.synth.tts_espeak import EspeakTts, EspeakVoice
from slmfactory.synth.tts_piper import PiperTts
from slmfactory.synth.tts_stage import write_flac
from slmfactory.synth.voices import VoiceSampler

needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
TEXTS = ["the birch canoe slid on the smooth planks", "glue the sheet to the dark blue background",
         "rice is often served in round bowls", "the juice of lemons makes fine punch"]


@needs_espeak
def test_espeak_voices_differ_and_have_sane_length():
    tts = EspeakTts(workers=1)
    a, b = tts.synthesize([TEXTS[0], TEXTS[0]], ["en-us", "en-gb+f3"])
    for w in (a, b):
        assert w.dtype == np.float32 and 1.0 < len(w) / tts.sample_rate < 6.0
        assert np.abs(w).max() > 0.05
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n]), "two voices produced the same waveform"


@needs_espeak
def test_batched_synthesis_equals_one_by_one():
    voices = ["en-us", "en-gb+m3", "en-029+f4", "en-us+f3"]
    one = EspeakTts(workers=1).synthesize(TEXTS, voices)
    many = EspeakTts(workers=4).synthesize(TEXTS, voices)
    assert len(one) == len(many) == 4
    for x, y in zip(one, many):
        np.testing.assert_array_equal(x, y)


@needs_espeak
def test_rate_and_pitch_variants_change_the_audio():
    tts = EspeakTts(workers=1)
    slow, fast, high = tts.synthesize([TEXTS[1]] * 3, ["en-us@110,50", "en-us@220,50", "en-us@110,90"])
    assert len(slow) > 1.4 * len(fast)
    assert not np.array_equal(slow, high)
    assert EspeakVoice.parse("en-gb+m3@150,40") == EspeakVoice("en-gb+m3", 150, 40)
    with pytest.raises(TtsError, match="name@rate,pitch"):
        EspeakVoice.parse("en-us@fast")


@needs_espeak
def test_bad_voice_and_mismatched_lengths_raise_readable_errors():
    tts = EspeakTts(workers=1)
    with pytest.raises(TtsError, match="espeak-ng --voices"):
        tts.synthesize(["hello"], ["no-such-voice-xx"])
    with pytest.raises(TtsError, match="one voice per text"):
        tts.synthesize(["a", "b"], ["en-us"])


def test_voice_sampler_is_seeded_order_independent_and_spread():
    voices = [f"v{i}" for i in range(8)]
    ids = [f"utt{i}" for i in range(400)]
    s0, s0b, s1 = VoiceSampler(voices, seed=0), VoiceSampler(voices, seed=0), VoiceSampler(voices, seed=1)
    picks = [s0.pick(i) for i in ids]
    assert picks == [s0b.pick(i) for i in reversed(ids)][::-1]  # order does not matter
    assert picks != [s1.pick(i) for i in ids]
    counts = Counter(picks)
    assert len(counts) == 8 and max(counts.values()) < 0.25 * len(ids)
    assert s0.pick("x", "assistant") in voices
    sv = VoiceSampler(["en-us", "en-gb+f3"], seed=0, rates=[140, 180], pitches=[40, 60])
    got = {sv.pick(i) for i in ids}
    assert all("@" in v for v in got) and len(got) == 8
    with pytest.raises(TtsError, match="empty"):
        VoiceSampler([])


def test_write_flac_is_atomic_and_scales_overload(tmp_path):
    wav = np.sin(np.linspace(0, 200, 8000)).astype(np.float32) * 1.5
    path = str(tmp_path / "a" / "x.flac")
    write_flac(path, wav, 16000)
    back, sr = sf.read(path, dtype="float32")
    assert sr == 16000 and len(back) == 8000 and np.abs(back).max() <= 1.0
    assert os.listdir(tmp_path / "a") == ["x.flac"]


def test_coqui_and_piper_error_paths(tmp_path):
    with pytest.raises(TtsError, match="not a folder"):
        CoquiTts(str(tmp_path / "missing"))
    (tmp_path / "vits").mkdir()
    with pytest.raises(TtsError, match="no config.json"):
        CoquiTts(str(tmp_path / "vits"))
    (tmp_path / "vits" / "config.json").write_text("{}")
    with pytest.raises(TtsError, match=r"slmfactory\[tts\]"):  # coqui-tts is an optional extra
        CoquiTts(str(tmp_path / "vits"))
    with pytest.raises(TtsError, match="not a file"):
        PiperTts(str(tmp_path / "voice.onnx"))
    (tmp_path / "voice.onnx").write_bytes(b"onnx")
    with pytest.raises(TtsError, match="onnx.json"):
        PiperTts(str(tmp_path / "voice.onnx"))
    (tmp_path / "voice.onnx.json").write_text("{}")
    with pytest.raises(TtsError, match=r"slmfactory\[tts\]"):
        PiperTts(str(tmp_path / "voice.onnx"))
    with pytest.raises(TtsError, match="unknown TTS backend"):
        make_tts("festival")
