"""Codec tokens: tiny EnCodec (24 kHz mono and 48 kHz stereo chunked configs) and Mimi with RANDOM weights (real
architectures; codebook buffers filled with seeded random vectors, since a fresh codebook is all zeros), saved to
tmp_path and loaded from there."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slmfactory.manifests import generate as gen
from slmfactory.manifests.schema import table_from_rows
from slmfactory.tokenize.codec import EncodecTokenizer, MimiTokenizer
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
    stereo = EncodecModel(EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1,
                                        codebook_size=64, sampling_rate=48000, audio_channels=2, normalize=True,
                                        chunk_length_s=1.0, overlap=0.01, use_causal_conv=False,
                                        target_bandwidths=[3.0, 6.0, 12.0, 24.0])).eval()  # the 48 kHz layout
    _randomise_codebooks(stereo)
    stereo.save_pretrained(root / "encodec48")
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
    used = stage.tok.precision.used  # auto's calibrated choice; a second build with it gives the same codes
    again = TokenizeStage(kind, checkpoint=str(codec_dirs / kind), num_codebooks=q, device="cpu", precision=used)
    assert again({"id": ["a"], "audio": wavs[:1]})["codes"][0] == out["codes"][0]
    assert out["unit_rate_hz"][0] == rate and out["tokenizer"][0].startswith(f"{kind}-q{q}-")
    assert ("(auto,agree=" in out["tokenizer"][0]) == (stage.tok.precision.candidate != "fp32")
    table_from_rows({k: v for k, v in out.items() if k != "audio"})


def test_codec_rejects_too_many_codebooks(codec_dirs):
    with pytest.raises(ValueError, match="codebooks"):
        TokenizeStage("encodec", checkpoint=str(codec_dirs / "encodec"), num_codebooks=64, device="cpu")
    with pytest.raises(ValueError, match="dedup"):
        TokenizeStage("mimi", checkpoint=str(codec_dirs / "mimi"), num_codebooks=2, dedup=True, device="cpu",
                      precision="fp32")


@pytest.mark.parametrize("cls,kind,q,rate", [(EncodecTokenizer, "encodec", 4, 75.0), (MimiTokenizer, "mimi", 3, 12.5),
                                             (EncodecTokenizer, "encodec48", 2, 150.0)])
def test_codec_padded_batch_equals_single(codec_dirs, wavs, cls, kind, q, rate):
    """One padded batch (with padding_mask) gives each item the codes it gets alone, for causal codecs and the
    stereo 48 kHz chunked EnCodec (mono input fed to both channels; 1 s chunks concatenated, pad frames cut)."""
    tok = cls(str(codec_dirs / kind), num_codebooks=q, device="cpu", precision="fp32", batch_seconds=60)
    items = [wavs[0][:24_000], wavs[1][:17_000], wavs[1][:13_000]]  # 1.5/1.06/0.8 s: two are padded in the batch
    if kind == "encodec48":  # non-causal: batches only equal lengths (two 1 s chunks each here)
        items = [wavs[0][:24_000], wavs[1][:24_000]]
    batch = tok.encode(items)
    for w, c in zip(items, batch):
        tol = 3 if kind == "encodec48" else 1  # 48 kHz: 1 s chunks overlap by 0.01 s (1.5 frames per boundary)
        assert c.shape[0] == q and abs(c.shape[1] - len(w) / 16000 * rate) <= tol
        assert np.array_equal(tok.encode([w])[0], c)
    assert tok.channels == (2 if kind == "encodec48" else 1)


def test_codec_one_codebook_units_are_flat(codec_dirs, wavs):
    """num_codebooks=1: the stage writes a flat ``units`` list (like HuBERT units), so dedup applies."""
    stage = TokenizeStage("encodec", checkpoint=str(codec_dirs / "encodec"), num_codebooks=1, device="cpu",
                          precision="fp32", dedup=True)
    out = stage({"id": ["a"], "audio": wavs[:1]})
    assert not any(out["error"])
    assert all(isinstance(u, int) for u in out["units"][0]) and sum(out["unit_durations"][0]) >= 75
    table_from_rows({k: v for k, v in out.items() if k != "audio"})
