"""``precision: auto``: the hardware check, the unit-agreement calibration and its fallback, on a tiny RANDOM
transformers HuBERT (real architecture) saved to tmp_path, with k-means trained on its own features."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize import precision as pr
from slmfactory.tokenize.base import pick_precision
from slmfactory.tokenize.hf_hubert import HFHubert
from slmfactory.tokenize.quantized import KMeansTokenizer


def test_auto_candidate_follows_cpu_support(monkeypatch):
    """bf16 is proposed only where the CPU has AVX512-BF16/AMX-BF16; explicit choices are kept or refused."""
    monkeypatch.setattr(pr, "cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert pick_precision(None, "cpu") == pick_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(pr, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert pick_precision(None, "cpu") == "bf16"
    monkeypatch.setattr(pr, "cpu_flags", lambda: {"amx_bf16"})
    assert pick_precision("auto", "cpu") == "bf16" and pick_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        pick_precision("fp16", "cpu")


def test_decide_keeps_candidate_only_at_99_percent():
    """A model whose bf16 units differ on 2% of frames falls back to fp32; at 0.5% it keeps bf16."""
    def fake(flip_share: float):
        state = {}

        def encode(batch):
            out = []
            for w in batch:
                u = (np.abs(w[::320]) * 1000).astype(np.int32) % 50
                if state["p"] == "bf16":
                    u[: int(len(u) * flip_share)] += 1
                out.append(u)
            return out
        return lambda p: state.__setitem__("p", p), encode, state

    set_p, enc, state = fake(0.02)
    d = pr.decide("auto", "bf16", set_p, enc, "fake")
    assert d.used == state["p"] == "fp32" and 0.97 < d.agreement < 0.99
    assert d.tag().startswith("+fp32(auto,agree=0.98")
    set_p, enc, state = fake(0.005)
    d = pr.decide(None, "bf16", set_p, enc, "fake")
    assert d.used == state["p"] == "bf16" and d.agreement >= 0.99 and d.tag().startswith("+bf16(auto,agree=")
    assert pr.decide("bf16", "bf16", set_p, enc, "fake").tag() == "+bf16"  # explicit: no calibration
    assert pr.decide("auto", "fp32", set_p, enc, "fake").tag() == ""  # no bf16 hardware: plain fp32


def test_auto_on_a_real_model(tmp_path, monkeypatch):
    """Auto on a tiny random HuBERT: bf16 only where the CPU supports it and the units agree, fp32 otherwise
    (forced here by a low measured agreement), decision in the label, same units run after run."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
                ).eval().save_pretrained(tmp_path / "hf")
    path = str(tmp_path / "hf")
    calib = pr.calibration_batch()
    kmeans = km.train(np.concatenate(HFHubert(path, layer=2, device="cpu", precision="fp32").features(calib)),
                      16, seed=0)

    def build():
        return KMeansTokenizer(HFHubert(path, layer=2, device="cpu"), kmeans)

    tok = build()
    assert tok.precision.candidate == ("bf16" if pr.cpu_bf16_supported() else "fp32")
    if tok.precision.candidate == "bf16":
        assert tok.precision.used == ("bf16" if tok.precision.agreement >= 0.99 else "fp32")
        assert f"+{tok.precision.used}(auto,agree=" in tok.label
    assert tok.extractor.precision == tok.precision.used
    wavs = [pr.calibration_batch(seed=1)[2], calib[0]]
    first = tok.encode(wavs)
    assert all(np.array_equal(a, b) for a, b in zip(first, build().encode(wavs)))  # deterministic

    monkeypatch.setattr(pr, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(pr, "agreement", lambda a, b: 0.95)  # as if bf16 changed 5% of units
    low = build()
    assert low.precision.used == low.extractor.precision == "fp32" and "+fp32(auto,agree=0.9500)" in low.label
    monkeypatch.setattr(pr, "cpu_flags", lambda: set())
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    plain = build()
    assert plain.precision.used == "fp32" and plain.precision.agreement is None and "(auto" not in plain.label
