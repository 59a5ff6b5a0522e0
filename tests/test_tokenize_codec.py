"""Codec tokens: tiny EnCodec and Mimi configs with RANDOM weights (real architectures; codebook buffers filled
with seeded random vectors, since a fresh codebook is all zeros), saved to tmp_path and loaded from there."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slmfactory.manifests import generate as gen
from slmfactory.manifests.schema import table_from_rows
from slmfactory.tokenize.stage import TokenizeStage

pytestmark = pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")


def _randomise_codebooks(model) -> None:
    g = torch.Generator().manual_seed(0)
    for name, buf in model.named_buffers():
        if name.endswith(("codebook.embed", "codebook.embed_avg", "codebook.embed_sum")):
            buf.copy_(torch.randn(buf.shape, generator=g))
        elif name.endswith(("cluster_usage", "cluster_size")):
            buf.fill_(1.0)


@pytest.fixture(scope="module")
def codec_dirs(tmp_path_factory):
    from transformers import EncodecConfig, EncodecModel, MimiConfig, MimiModel

    root = tmp_path_factory.mktemp("codecs")
    torch.manual_seed(0)
    enc = EncodecModel(EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1,
                                     codebook_size=64)).eval()
    _randomise_codebooks(enc)
    enc.save_pretrained(root / "encodec")
    mimi = MimiModel(MimiConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=2, head_dim=16, codebook_size=64, codebook_dim=16,
                                num_quantizers=8, num_semantic_quantizers=1, num_filters=4,
                                vector_quantization_hidden_dimension=16, upsample_groups=32)).eval()
    _randomise_codebooks(mimi)
    mimi.save_pretrained(root / "mimi")
    return root


@pytest.fixture(scope="module")
def wavs():
    return [gen.sentence(gen.SENTENCES[i], gen.VOICES[i % 2]).wav for i in (0, 20)]


@pytest.mark.parametrize("kind,rate,q", [("encodec", 75.0, 4), ("mimi", 12.5, 3)])
def test_codec_stage_codes(codec_dirs, wavs, kind, rate, q):
    """`codes` has Q lists of duration*rate (+-1) frames with ids < codebook size, deterministic, schema-valid."""
    stage = TokenizeStage(kind, checkpoint=str(codec_dirs / kind), num_codebooks=q, device="cpu")
    out = stage({"id": ["a", "b"], "audio": wavs})
    assert not any(out["error"])
    for w, codes in zip(wavs, out["codes"]):
        assert len(codes) == q
        assert all(abs(len(c) - len(w) / 16000 * rate) <= 1 for c in codes)
        arr = np.asarray(codes)
        assert arr.min() >= 0 and arr.max() < 64 and len(np.unique(arr)) > 3  # not a constant stream
    again = TokenizeStage(kind, checkpoint=str(codec_dirs / kind), num_codebooks=q, device="cpu")
    assert again({"id": ["a"], "audio": wavs[:1]})["codes"][0] == out["codes"][0]
    assert out["unit_rate_hz"][0] == rate and out["tokenizer"][0].startswith(f"{kind}-q{q}-")
    table_from_rows({k: v for k, v in out.items() if k != "audio"})


def test_codec_rejects_too_many_codebooks(codec_dirs):
    with pytest.raises(ValueError, match="codebooks"):
        TokenizeStage("encodec", checkpoint=str(codec_dirs / "encodec"), num_codebooks=64, device="cpu")
    with pytest.raises(ValueError, match="dedup"):
        TokenizeStage("mimi", checkpoint=str(codec_dirs / "mimi"), num_codebooks=2, dedup=True, device="cpu")
