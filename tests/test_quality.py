"""Quality filters for ingest: DNSMOS scores on real speech vs noise, Emilia-style speech filters, the recipe.

Weights: the DNSMOS P.835 (``sig_bak_ovr.onnx``) and P.808 (``model_v8.onnx``) ONNX models shipped by the
``speechmos`` package (``bundled("dnsmos")``), loaded once for the module. Audio: the LibriVox clips (real read
speech with transcripts) and an espeak-ng folder corpus from ``slmfactory.manifests.generate``.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from slmfactory.manifests.audio import load_audio
from slmfactory.pipelines.recipe import load_recipe
from slmfactory.stages.dnsmos import COLUMNS, DnsmosStage
from slmfactory.stages.speech_filter import SpeechFilterStage

SR = 16_000


@pytest.fixture(scope="module")
def stage():
    return DnsmosStage(min_ovrl=2.5, hop_seconds=9.01)  # 2.5: between clean read speech and speech at 0 dB SNR


@pytest.fixture(scope="module")
def clip(librivox):
    wav, _ = load_audio(str(librivox[3][0]))  # 6 s of clean read speech
    return wav


def _noisy(wav: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(wav)).astype(np.float32)
    noise *= np.sqrt(np.mean(wav ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1, 1).astype(np.float32)


def test_clean_speech_outscores_noisy_speech_noise_and_silence(stage, clip):
    rng = np.random.default_rng(1)
    audio = [clip, _noisy(clip, 0.0), (0.1 * rng.standard_normal(5 * SR)).astype(np.float32),
             np.zeros(5 * SR, np.float32)]
    out = stage({"id": ["clean", "noisy", "noise", "silence"], "audio_path": ["c", "n", "w", "s"],
                 "start": [0.0] * 4, "duration": [len(a) / SR for a in audio], "audio": audio})
    ovrl, bak = out["dnsmos_ovrl"], out["dnsmos_bak"]
    for col in COLUMNS:
        assert all(1.0 <= v <= 5.0 for v in out[col]), (col, out[col])
    assert ovrl[0] > ovrl[1] + 0.5 and bak[0] > bak[1] + 0.5, (ovrl, bak)
    assert ovrl[0] > max(ovrl[2], ovrl[3]) + 0.5, ovrl
    assert out["error"][0] is None, out["error"][0]
    for i in (1, 2, 3):  # the threshold rejects the noisy row, naming value, threshold and fix
        assert out["error_stage"][i] == "dnsmos"
        assert f"{ovrl[i]:.2f}" in out["error"][i] and "min_ovrl 2.5" in out["error"][i] and "recipe" in out["error"][i]


def test_scores_are_deterministic(stage, clip):
    assert stage.score(clip) == stage.score(clip.copy())


def test_matches_the_speechmos_reference(stage, librivox):
    """Our numpy log-mel and window tiling give the reference implementation's scores (hop 1 s, 2 windows)."""
    from speechmos.dnsmos import DNSMOS

    from slmfactory.manifests.models import bundled

    wav, _ = load_audio(str(librivox[1][0]))  # 3 s: tiled to 12 s, two windows
    folder = bundled("dnsmos").path()
    ref = DNSMOS(str(folder / "sig_bak_ovr.onnx"), str(folder / "model_v8.onnx"))(wav, SR, False)
    ours = stage.score(wav, hop=1.0)
    for key in ("sig", "bak", "ovrl", "p808"):
        assert abs(ours[key] - float(ref[f"{key}_mos"])) < 1e-3, (key, ours, ref)


def test_speech_filter_rejects_a_too_fast_row_and_keeps_read_speech(librivox):
    params = next(s.params for s in load_recipe("ingest").stages if s.uses == "speech_filter")
    filt = SpeechFilterStage(**params)  # the ingest recipe's defaults
    path, text = librivox[0]
    dur = len(load_audio(str(path))[0]) / SR
    out = filt({"id": ["ok", "fast", "untranscribed", "blip"], "audio_path": [str(path)] * 4,
                "start": [0.0] * 4, "duration": [dur, dur, dur, 0.1],
                "text": [text, " ".join([text] * 4), None, None]})
    assert out["error"][0] is None and abs(out["chars_per_second"][0] - len(text) / dur) < 1e-6
    assert out["error_stage"][1] == "speech_filter"
    assert f"{out['chars_per_second'][1]:.1f}" in out["error"][1] and "max_cps" in out["error"][1] \
        and "raise max_cps" in out["error"][1]
    assert out["error"][2] is None and out["chars_per_second"][2] is None  # no text: no rate check
    assert "min_seconds" in out["error"][3]


def test_thresholds_are_recipe_vars():
    rec = load_recipe("ingest", {"min_ovrl": 3.0, "max_cps": 25.0})
    by = {s.uses: s.params for s in rec.stages}
    assert by["dnsmos"]["min_ovrl"] == 3.0 and by["speech_filter"]["max_cps"] == 25.0
    with pytest.raises(ValueError, match="min_cps must be a number"):
        SpeechFilterStage(min_cps="fast")
    with pytest.raises(ValueError, match="min_cps < max_cps"):
        SpeechFilterStage(min_cps=20, max_cps=10)


def test_ingest_recipe_writes_quality_columns(corpora, tmp_path):
    from slmfactory.pipelines.runner import run_recipe

    out = tmp_path / "q"
    res = run_recipe("ingest", {"kind": "folder", "root": str(corpora["folder"]), "out": str(out)}, executor="local")
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    assert res.errors == 0 and man.height == res.rows > 0  # the defaults keep clean (espeak) speech
    for col in COLUMNS:
        assert man[col].dtype == pl.Float64 and man[col].is_between(1.0, 5.0).all(), (col, man[col])
    with_text = man.filter(pl.col("text").is_not_null())
    assert with_text.height > 0 and with_text["chars_per_second"].is_not_null().all()
