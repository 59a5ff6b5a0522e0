"""Spectral baseline + faiss k-means + TokenizeStage on espeak-ng speech (no model weights at all)."""
from __future__ import annotations

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from slmfactory.manifests import generate as gen
from slmfactory.manifests.schema import table_from_rows
from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize.postprocess import dedup, expand
from slmfactory.tokenize.spectral import SpectralFeatures
from slmfactory.tokenize.stage import TokenizeStage

pytestmark = pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")
N_SENT, VOICES = 8, [0, 1, 2]


@pytest.fixture(scope="module")
def utts() -> dict[tuple[int, int], np.ndarray]:
    return {(s, v): gen.sentence(gen.SENTENCES[s], gen.VOICES[v]).wav for s in range(N_SENT) for v in VOICES}


@pytest.fixture(scope="module")
def km_prefix(utts, tmp_path_factory) -> str:
    feats = np.concatenate(SpectralFeatures().features(list(utts.values())))
    prefix = str(tmp_path_factory.mktemp("km") / "spectral-k50")
    km.train(feats, 50, seed=0, meta={"features": SpectralFeatures().label}).save(prefix)
    return prefix


def _stage_units(stage, wavs):
    out = stage({"id": [str(i) for i in range(len(wavs))], "audio": list(wavs)})
    assert not any(out["error"]), out["error"]
    return [np.asarray(u) for u in out["units"]]


def test_frame_count_matches_duration(utts, km_prefix):
    """Frames = duration * 50 Hz within one frame, for every utterance."""
    stage = TokenizeStage("spectral", kmeans=km_prefix)
    wavs = list(utts.values())
    for w, u in zip(wavs, _stage_units(stage, wavs)):
        assert abs(len(u) - len(w) / 16000 * 50) <= 1.0
        assert u.dtype.kind == "i" and u.min() >= 0 and u.max() < 50


def test_deterministic_and_same_voice_identical(utts, km_prefix):
    """Two stages built from the same files give identical units; re-synthesised audio gives identical units."""
    a = _stage_units(TokenizeStage("spectral", kmeans=km_prefix), list(utts.values()))
    b = _stage_units(TokenizeStage("spectral", kmeans=km_prefix), list(utts.values()))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    again = gen.sentence(gen.SENTENCES[3], gen.VOICES[1]).wav
    (u1,), (u2,) = _stage_units(TokenizeStage("spectral", kmeans=km_prefix), [utts[(3, 1)]]), \
        _stage_units(TokenizeStage("spectral", kmeans=km_prefix), [again])
    assert np.array_equal(u1, u2)


def test_batch_equals_single(utts, km_prefix):
    """Units of a segment are identical alone and inside a batch of different lengths."""
    stage = TokenizeStage("spectral", kmeans=km_prefix)
    wavs = list(utts.values())[:10]
    batched = _stage_units(stage, wavs)
    for w, u in zip(wavs, batched):
        (single,) = _stage_units(stage, [w])
        assert np.array_equal(single, u)


def test_same_sentence_two_voices_closer_than_two_sentences(utts, km_prefix):
    """Normalised edit distance of deduplicated units: same text/other voice < other text/same voice."""
    stage = TokenizeStage("spectral", kmeans=km_prefix)
    keys = list(utts)
    units = {k: dedup(u)[0].tolist() for k, u in zip(keys, _stage_units(stage, [utts[k] for k in keys]))}
    dist = Levenshtein.normalized_distance
    same_text = [dist(units[(s, 0)], units[(s, v)]) for s in range(N_SENT) for v in VOICES[1:]]
    other_text = [dist(units[(s, v)], units[((s + 1) % N_SENT, v)]) for s in range(N_SENT) for v in VOICES[1:]]
    assert np.mean(same_text) < np.mean(other_text) - 0.1
    assert sum(a < b for a, b in zip(same_text, other_text)) >= 0.75 * len(same_text)


def test_dedup_offset_and_schema(utts, km_prefix):
    """dedup keeps run lengths that expand back to the raw units; offset shifts ids; the row fits the schema."""
    wav = utts[(0, 0)]
    (raw,) = _stage_units(TokenizeStage("spectral", kmeans=km_prefix), [wav])
    stage = TokenizeStage("spectral", kmeans=km_prefix, dedup=True, offset=32000)
    out = stage({"id": ["a"], "audio": [wav], "duration": [len(wav) / 16000]})
    u, d = np.asarray(out["units"][0]), np.asarray(out["unit_durations"][0])
    assert np.array_equal(expand(u - 32000, d), raw)
    assert (u >= 32000).all() and len(u) < len(raw)
    assert out["unit_rate_hz"][0] == 50.0 and "+dedup" in out["tokenizer"][0]
    t = table_from_rows({k: v for k, v in out.items() if k != "audio"})
    assert str(t.schema.field("units").type) == "list<item: int32>"


def test_bad_rows_are_rejected_not_dropped(utts, km_prefix, tmp_path):
    """Missing file, too-short audio and an earlier-rejected row all come back with a reason; good rows get units."""
    good = tmp_path / "good.wav"
    gen._write(good, utts[(1, 0)])
    stage = TokenizeStage("spectral", kmeans=km_prefix)
    out = stage({
        "id": ["ok", "missing", "short", "prev"],
        "audio_path": [str(good), str(tmp_path / "nope.flac"), None, None],
        "start": [0.0, 0.0, 0.0, 0.0], "duration": [None, None, None, None],
        "audio": [None, None, np.zeros(100, np.float32), None],
        "error": [None, None, None, "decode: earlier failure"], "error_stage": [None, None, None, "decode"],
    })
    by_id = dict(zip(out["id"], range(len(out["id"]))))
    assert len(out["id"]) == 4
    assert out["error"][by_id["ok"]] is None and len(out["units"][by_id["ok"]]) > 50
    assert "nope.flac" in out["error"][by_id["missing"]] and out["error_stage"][by_id["missing"]] == "tokenize"
    assert "too short" in out["error"][by_id["short"]]
    assert out["error_stage"][by_id["prev"]] == "decode"


def test_kmeans_files_roundtrip_and_metadata(km_prefix):
    """Centroids are plain .npy (loadable without pickle) with JSON metadata naming k, seed and features."""
    m = km.load(km_prefix)
    assert m.centroids.shape == (50, 39)
    assert np.load(km_prefix + ".npy", allow_pickle=False).shape == (50, 39)
    assert m.meta["k"] == 50 and m.meta["seed"] == 0 and m.meta["features"].startswith("mfcc")
    assert m.meta["centroids_sha1"] == km.array_hash(m.centroids)
