"""Quality gates. espeak-ng speech is generated at test time; the alignment gate uses pocketsphinx's bundled
US English model (no download). The WER gate's logic is tested with ASR callables standing in for Whisper."""
from __future__ import annotations

import numpy as np
import pytest

from slmfactory.manifests.generate import SENTENCES, have_espeak
from slmfactory.synth.gates import AlignGate, WerGate, duration_gate, rate_gate, text_gate, whisper_asr
from slmfactory.synth.tts_espeak import EspeakTts

needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
VOICES = ["en-us", "en-us+f3", "en-gb+m3"]


@pytest.fixture(scope="module")
def speech():
    tts = EspeakTts(workers=3)
    items = [(s, v) for s in SENTENCES[:3] for v in VOICES]
    wavs = tts.synthesize([s for s, _ in items], [v for _, v in items])
    return tts.sample_rate, [(s, v, w) for (s, v), w in zip(items, wavs)]


@pytest.fixture(scope="module")
def gate():
    return AlignGate()


@needs_espeak
def test_espeak_speech_passes_the_alignment_gate(speech, gate):
    sr, items = speech
    for text, voice, wav in items:
        r = gate(text, wav, sr)
        assert r.passed, (voice, text, r.reason())
        assert -6.0 <= r.value <= 0.5
    words = gate.align(items[0][0], items[0][2], sr)
    assert [w for w, *_ in words] == items[0][0].split()
    assert all(a < b for _, a, b, _ in words) and words[-1][2] <= len(items[0][2]) / sr + 0.05


@needs_espeak
def test_alignment_gate_rejects_mismatched_truncated_and_empty_audio(speech, gate):
    sr, items = speech
    other = "the hogs were fed chopped corn and garbage"
    rng = np.random.default_rng(0)
    for text, voice, wav in items:
        assert not gate(other, wav, sr).passed, ("wrong text passed", voice, text)
        assert not gate(text, wav[: len(wav) // 2], sr).passed, ("truncated audio passed", voice, text)
    text, _, wav = items[0]
    r = gate(text, np.zeros_like(wav), sr)
    assert not r.passed and r.reason().startswith("gate align:")
    assert not gate(text, rng.normal(0, 0.1, len(wav)).astype(np.float32), sr).passed


@needs_espeak
def test_word_scores_catch_substitutions_that_alignment_alone_misses(speech, gate):
    sr, items = speech
    plain = AlignGate(min_word_score=None)
    caught_scored = caught_plain = 0
    for text, _, wav in items:
        words = text.split()
        words[words.index(max(words, key=len))] = "banana"  # the longest word: what a TTS garbles
        caught_scored += not gate(" ".join(words), wav, sr).passed
        caught_plain += not plain(" ".join(words), wav, sr).passed
        assert plain(text, wav, sr).passed
    assert caught_scored >= 5 and caught_scored > caught_plain, (caught_scored, caught_plain)


@needs_espeak
def test_oov_policy(speech):
    sr, items = speech
    text, _, wav = items[0]
    skip = AlignGate(oov="skip")(text + " zorblaxian", wav, sr)
    assert skip.passed and skip.value == "oov:zorblaxian"
    rej = AlignGate(oov="reject")(text + " zorblaxian", wav, sr)
    assert not rej.passed and "dictionary" in rej.reason()
    with pytest.raises(ValueError, match="oov"):
        AlignGate(oov="maybe")


@needs_espeak
def test_digits_are_spoken_words_so_silence_fails_the_gate(gate):
    """Regression: the gate once tokenized "3" as a word missing from the dictionary and passed the item
    unchecked, so one second of silence labelled with a digit passed. Text now goes through the one
    normalizer ("3" -> "three"): silence fails either way, and espeak-ng saying the sentence passes."""
    from slmfactory.manifests.espeak import speak

    silence = np.zeros(16000, np.float32)
    for text in ("The meeting starts at 3 pm.", "The meeting starts at three pm."):
        r = gate(text, silence, 16000)
        assert not r.passed and r.reason().startswith("gate align:"), (text, r)
    wav, sr = speak("The meeting starts at 3 pm.", voice="en-us", sample_rate=16000)
    r = gate("The meeting starts at 3 pm.", wav, sr)
    assert r.passed and isinstance(r.value, float), r.reason()
    assert [w for w, *_ in gate.align("The meeting starts at 3 pm.", wav, sr)] == "the meeting starts at three pm".split()


@needs_espeak
def test_words_missing_from_the_dictionary_cannot_carry_an_item(speech, gate):
    """OOV words are not scored, but the rest of the text still has to be in the audio, and an item made
    mostly of unknown words fails instead of passing unchecked."""
    sr, items = speech
    text, _, wav = items[0]
    assert not gate(text + " zorblaxian", np.zeros_like(wav), sr).passed
    mostly = gate("zorblaxian quixotrel the", wav, sr)
    assert not mostly.passed and "dictionary" in mostly.reason()
    assert not gate("zorblaxian", wav, sr).passed


def test_duration_rate_and_text_gates():
    assert duration_gate(2.0).passed and not duration_gate(0.2).passed and not duration_gate(40.0).passed
    assert "outside [0.5, 30.0] s" in duration_gate(40.0).reason()
    assert rate_gate("one two three four", 2.0).passed
    assert not rate_gate("one two three four five six seven eight nine ten eleven twelve", 1.0).passed  # 12 w/s
    assert not rate_gate("one", 5.0).passed  # 0.2 w/s: stuck or silent synthesis
    assert text_gate("Could you tell me a joke?").passed
    for bad in ["", " ", "x", "#### $$$ 1234 5678 !!!", "aaaaaaaaaaaaaaa", "caf\ufffd au lait", "a" * 3000]:
        r = text_gate(bad)
        assert not r.passed, bad
        assert r.reason().startswith("gate text:")


@needs_espeak
def test_wer_gate_with_asr_callables(speech):
    sr, items = speech
    text, _, wav = items[0]
    heard = []

    def perfect(w):
        heard.append(len(w))
        return text.upper() + "."

    r = WerGate(perfect, max_wer=0.1)(text, wav, sr)
    assert r.passed and r.value == 0.0
    assert abs(heard[0] - len(wav) * 16000 / sr) < 2  # the ASR gets 16 kHz audio
    one_wrong = " ".join(text.split()[:-1] + ["banana"])
    r = WerGate(lambda w: one_wrong, max_wer=0.1)(text, wav, sr)
    assert not r.passed and r.value == round(1 / len(text.split()), 3) and "banana" in r.reason()
    assert not WerGate(lambda w: "", max_wer=0.5)(text, wav, sr).passed
    with pytest.raises(ValueError, match="not a local folder"):
        whisper_asr("openai/whisper-small")
