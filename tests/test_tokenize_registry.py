"""Speech tokenizer backends are the TOKENIZERS registry family: recipes and the CLI name them, typos are caught.
No audio and no weights needed."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slmfactory.manifests.registry import TOKENIZERS, UnknownName
from slmfactory.tokenize.base import SpeechTokenizer
from slmfactory.tokenize.factory import build_features
from slmfactory.tokenize.stage import TokenizeStage


def test_every_registered_backend_is_a_speech_tokenizer():
    assert "spectral" in TOKENIZERS.names()  # the offline default; never the exact set
    for name in TOKENIZERS.names():
        cls = TOKENIZERS.load(name)
        assert issubclass(cls, SpeechTokenizer) and cls.name == name


def test_unknown_tokenizer_says_did_you_mean(tmp_path):
    with pytest.raises(UnknownName, match="Did you mean 'hubert'"):
        TokenizeStage("hubret", kmeans=str(tmp_path / "km"))
    with pytest.raises(ValueError, match="Did you mean 'spectral'.*Known: "):
        build_features("spectrale")
    from slmfactory.pipelines.cli import app

    r = CliRunner().invoke(app, ["kmeans", "train", str(tmp_path), "--tokenizer", "hubret", "-o", str(tmp_path / "k")])
    assert r.exit_code == 2 and "Did you mean 'hubert'" in r.output


def test_codec_backend_has_no_kmeans_features():
    codecs = [n for n in TOKENIZERS.names() if not TOKENIZERS.load(n).needs_kmeans]
    if not codecs:
        pytest.skip("no codec backend registered")
    with pytest.raises(ValueError, match="has no k-means features; choose one of .*spectral"):
        build_features(codecs[0])


def test_spectral_builds_from_stage_parameters():
    """Parameters other backends use (layer, device) are ignored; None means the backend's default."""
    ext = build_features("spectral", layer=6, device="cpu", checkpoint=None, deltas=None)
    assert ext.label == "mfcc13+d+cmn" and ext.needs_kmeans
