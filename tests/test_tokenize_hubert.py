"""HuBERT-family feature paths: torchaudio hubert_base with RANDOM weights (real architecture, seeded), tiny
transformers HuBERT configs with RANDOM weights saved to tmp_path and loaded back from that local directory,
and a torchaudio state_dict saved to tmp_path (.pt and .safetensors) to exercise checkpoint loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slmfactory.manifests import generate as gen
from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize.hf_hubert import HFHubert
from slmfactory.tokenize.hubert import TorchaudioHubert
from slmfactory.tokenize.stage import TokenizeStage

pytestmark = pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def wavs() -> list[np.ndarray]:
    # different lengths (so batches are padded) in two voices, 1.3-2.7 s
    return [gen.sentence(gen.SENTENCES[i], gen.VOICES[i % 3]).wav for i in (20, 16, 2, 10)]


@pytest.fixture(scope="module")
def ta_model() -> TorchaudioHubert:
    return TorchaudioHubert(None, layer=6, device="cpu", precision="fp32", batch_seconds=0, seed=0)


def test_torchaudio_matches_library_forward(ta_model, wavs):
    """Our masked forward of one unpadded item equals torchaudio's own extract_features (layer 6) on it."""
    w = np.pad(wavs[0], 40)
    with torch.inference_mode():
        ref, _ = ta_model.model.extract_features(torch.from_numpy(w)[None], num_layers=6)
    ours = ta_model.features([wavs[0]])[0]
    assert ours.shape == ref[-1][0].shape
    assert np.abs(ours - ref[-1][0].numpy()).max() < 1e-4


@pytest.mark.slow
def test_torchaudio_batch_equals_single_and_frame_counts(ta_model, wavs, tmp_path):
    """Padded batches give the same features (to float noise) and identical units as one item at a time;
    frames = duration * 50 Hz within one frame."""
    single = ta_model.features(wavs)
    ta_model.batch_seconds = 60.0
    try:
        batched = ta_model.features(wavs)
        assert ta_model.last_padding_share > 0.05  # the batch really was padded
    finally:
        ta_model.batch_seconds = 0
    for w, a, b in zip(wavs, single, batched):
        assert abs(a.shape[0] - len(w) / 16000 * 50) <= 1
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
    model = km.train(np.concatenate(single), 50, seed=0)
    model.save(tmp_path / "km")
    stage = TokenizeStage("hubert", kmeans=str(tmp_path / "km"), allow_random=True, precision="fp32",
                          batch_seconds=60, device="cpu")
    out_b = stage({"id": list("abcd"), "audio": wavs})
    stage.tok.extractor.batch_seconds = 0  # same weights, one item per forward
    for i, w in enumerate(wavs):
        out_1 = stage({"id": ["x"], "audio": [w]})
        assert out_1["units"][0] == out_b["units"][i]
    assert out_b["unit_rate_hz"][0] == 50.0 and out_b["tokenizer"][0].startswith("hubert_base-L6-random")


@pytest.mark.slow
def test_torchaudio_local_checkpoint_loads(ta_model, wavs, tmp_path):
    """A state_dict saved to tmp_path as .pt and .safetensors loads into a fresh model with identical features."""
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in ta_model.model.state_dict().items()}
    full = TorchaudioHubert(None, layer=12, device="cpu", precision="fp32", seed=123)  # other random weights
    full_sd = full.model.state_dict()
    full_sd.update(sd)  # layers 1-6 from ta_model, 7-12 random: a complete hubert_base state_dict
    torch.save(full_sd, tmp_path / "hubert.pt")
    save_file({k: v.contiguous() for k, v in full_sd.items()}, str(tmp_path / "hubert.safetensors"))
    ref = ta_model.features(wavs[:1])[0]
    for name in ("hubert.pt", "hubert.safetensors"):
        m = TorchaudioHubert(str(tmp_path / name), layer=6, device="cpu", precision="fp32")
        assert np.abs(m.features(wavs[:1])[0] - ref).max() < 1e-5
        assert "random" not in m.label and m.meta["checkpoint_sha1"]
    with pytest.raises(FileNotFoundError, match="local path"):
        TorchaudioHubert(str(tmp_path / "missing.pt"))


def _tiny_hf(tmp_path, name: str, **overrides) -> str:
    from transformers import HubertConfig, HubertModel

    cfg = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
               conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = HubertModel(HubertConfig(**cfg)).eval()
    model.save_pretrained(tmp_path / name)
    return str(tmp_path / name)


def test_hf_hubert_local_dir_matches_library_and_batches(wavs, tmp_path):
    """A tiny random transformers HuBERT saved to tmp_path: layer-2 features equal transformers' own
    hidden_states[2] for one item, and padded batches equal single items."""
    from transformers import HubertModel

    path = _tiny_hf(tmp_path, "hf")
    ext = HFHubert(path, layer=2, device="cpu", precision="fp32", batch_seconds=0)
    ref_model = HubertModel.from_pretrained(path, local_files_only=True).eval()
    with torch.inference_mode():
        out = ref_model(torch.from_numpy(np.pad(wavs[1], 40))[None], output_hidden_states=True)
    single = ext.features(wavs)
    assert np.abs(single[1] - out.hidden_states[2][0].numpy()).max() < 1e-4
    ext.batch_seconds = 60.0
    batched = ext.features(wavs)
    for w, a, b in zip(wavs, single, batched):
        assert abs(a.shape[0] - len(w) / 16000 * 50) <= 1
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
    assert ext.frame_rate_hz == 50.0 and ext.label.startswith("hf-hubert-L2-")


def test_hf_hubert_25hz_config(wavs, tmp_path):
    """An mHuBERT-25Hz-shaped conv stack (hop 640) gives 25 Hz frames; layer numbering is checked."""
    path = _tiny_hf(tmp_path, "hf25", conv_dim=(16,) * 8, conv_stride=(5, 2, 2, 2, 2, 2, 2, 2),
                    conv_kernel=(10, 3, 3, 3, 3, 2, 2, 2))
    ext = HFHubert(path, layer=3, device="cpu", precision="fp32")
    assert ext.frame_rate_hz == 25.0
    for w, f in zip(wavs, ext.features(wavs)):
        assert abs(f.shape[0] - len(w) / 16000 * 25) <= 1 and f.shape[0] == ext.num_frames(len(w))
    with pytest.raises(ValueError, match="layers 1..3"):
        HFHubert(path, layer=4, device="cpu")
