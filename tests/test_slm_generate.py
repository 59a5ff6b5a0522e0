"""Generation with a speech LM: KV cache, modality constraints, text<->speech prompts, continuation from audio.

Models are RANDOMLY initialised tiny ``LlamaForCausalLM``s (the architecture transformers loads for a trained
speech LM) saved to tmp_path with a ``speech_lm.json`` in the packed data's vocabulary layout; the text
tokenizer is a sentencepiece model trained here; units come from real LibriVox speech through the spectral
tokenizer with k-means centroids fitted here, and from a tiny EnCodec with random weights (real architecture).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slmfactory.manifests import generate as gen
from slmfactory.manifests.audio import load_audio
from slmfactory.pipelines.continuation import NoVocoder, continue_audio, prompt_units, units_to_audio
from slmfactory.slm.generate import SpeechLM
from slmfactory.stages.interleave import Vocab
from slmfactory.stages.texttok import TextTokenizer, train_sentencepiece
from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize.spectral import SpectralFeatures
from slmfactory.tokenize.stage import TokenizeStage

K = 20  # units


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is ~10x faster than two spinning on each other
    (the tokenize stage would set all cores: its params below say num_threads=1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, librivox):
    """A tiny random Llama + speech_lm.json whose units are spectral k-means units (k=20) fitted on a LibriVox clip."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("slm")
    train_sentencepiece(gen.SENTENCES, root / "spm", vocab_size=120)
    tok = TextTokenizer(root / "spm")
    wav, _ = load_audio(str(librivox[0][0]), 0.0, 4.0)
    feats = SpectralFeatures().features([wav])[0]
    km.train(feats, k=K, niter=5, seed=0).save(root / "km")
    params = {"tokenizer": "spectral", "kmeans": str(root / "km"), "dedup": True, "num_threads": 1}
    label = TokenizeStage(**params).tokenizer_name
    vocab = Vocab(tok.vocab_size, K)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512, tie_word_embeddings=False))
    with torch.no_grad():
        model.lm_head.weight[vocab.eos_id] = 0.0  # a random model should not stop after one token
    model.save_pretrained(root / "lm")
    info = {**vocab.info(), "text_tokenizer": {"kind": tok.kind, "path": tok.path, "vocab_size": tok.vocab_size},
            "unit_tokenizer": [label], "tokenize": params, "init": "cold", "config": {}}
    (root / "lm" / "speech_lm.json").write_text(json.dumps(info))
    return root / "lm"


@pytest.fixture(scope="module")
def lm(model_dir):
    return SpeechLM.load(model_dir)


def test_cached_and_uncached_greedy_decoding_agree(lm):
    prompt = lm.prompt_ids(units=list(range(K)) * 2)
    cached = lm.generate_ids(prompt, "any", max_new_tokens=30, temperature=0, use_cache=True)
    plain = lm.generate_ids(prompt, "any", max_new_tokens=30, temperature=0, use_cache=False)
    assert len(cached) == 30 and cached == plain


def test_constrained_sampling_never_emits_a_forbidden_id(lm):
    """Sampling at temperature 1.5 over the whole top-k: unconstrained output does use ids of both modalities
    (so the check can fail), constrained output never leaves its own; the seed fixes the sample."""
    prompt = lm.prompt_ids(units=[3, 5, 7, 1])
    free = lm.generate_ids(prompt, "any", max_new_tokens=100, temperature=1.5, top_k=0, seed=1)
    assert any(t < lm.text_size for t in free) and any(t >= lm.unit_offset for t in free)
    for modality in ("speech", "text"):
        ok = lm.allowed(modality)
        for seed in (0, 1):
            ids = lm.generate_ids(prompt, modality, max_new_tokens=100, temperature=1.5, top_k=0, seed=seed)
            assert ids and all(ok[t] for t in ids), modality
    a = lm.generate_ids(prompt, "speech", max_new_tokens=30, seed=4)
    assert a == lm.generate_ids(prompt, "speech", max_new_tokens=30, seed=4)
    assert a != lm.generate_ids(prompt, "speech", max_new_tokens=30, seed=5)


def test_text_to_speech_and_speech_to_text_prompts(lm):
    res = lm.generate(text="The cat sat on 2 mats", modality="speech", max_new_tokens=30)
    assert res.prompt[0] == lm.text_id and res.prompt[-1] == lm.speech_id
    assert lm.text_tok.decode(res.prompt[1:-1]) == "the cat sat on two mats"  # normalised like transcripts
    body = [t for t in res.tokens if t != lm.eos_id]
    assert res.units and res.units == [t - lm.unit_offset for t in body] and all(0 <= u < K for u in res.units)
    assert [s["kind"] for s in res.segments] == ["speech"] and res.text == ""
    back = lm.generate(units=res.units[:10], modality="text", max_new_tokens=20)
    assert back.prompt[0] == lm.speech_id and back.prompt[-1] == lm.text_id
    assert back.units == [] and isinstance(back.text, str) and back.text
    assert back.text == lm.text_tok.decode([t for t in back.tokens if t != lm.eos_id])


def test_continuation_from_librivox_audio(lm, model_dir, librivox, tmp_path):
    """3 s of real speech -> the training data's tokenizer -> model -> units; k-means units say there is no vocoder;
    a prompt tokenized another way is refused; the CLI writes the same continuation as JSON."""
    clip = librivox[0][0]
    res, stage = continue_audio(lm, clip, seconds=3.0, max_new_tokens=30, seed=0)
    n_prompt = len(res.prompt) - 1
    assert res.prompt[0] == lm.speech_id and 20 < n_prompt <= 150  # 3 s at 50 Hz, deduplicated
    assert res.units and all(0 <= u < K for u in res.units) and res.text == ""
    with pytest.raises(NoVocoder, match="no vocoder.*encodec"):
        units_to_audio(stage, res.units)
    with pytest.raises(ValueError, match="trained on"):
        continue_audio(lm, clip, 3.0, overrides={"dedup": False})
    from typer.testing import CliRunner

    from slmfactory.pipelines.cli import app

    out = tmp_path / "cont.json"
    r = CliRunner().invoke(app, ["slm", "generate", str(model_dir), "--prompt-audio", str(clip), "--max-new-tokens",
                                 "30", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["units"] == res.units
    r = CliRunner().invoke(app, ["slm", "generate", str(model_dir), "--prompt-audio", str(clip), "-o", str(tmp_path / "x.wav")])
    assert r.exit_code != 0 and "no vocoder" in r.output and not (tmp_path / "x.wav").exists()


def _tiny_codec(kind: str):
    """A tiny codec of the real architecture with random weights (no codec weights ship offline)."""
    from transformers import EncodecConfig, EncodecModel, MimiConfig, MimiModel

    torch.manual_seed(0)
    if kind == "encodec":
        cfg = EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1, codebook_size=64)
        model, rate = EncodecModel(cfg).eval(), 75
    else:
        cfg = MimiConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, head_dim=16, codebook_size=64, codebook_dim=16, num_quantizers=8,
                         num_semantic_quantizers=1, num_filters=4, vector_quantization_hidden_dimension=16,
                         upsample_groups=32)
        model, rate = MimiModel(cfg).eval(), 12.5
    g = torch.Generator().manual_seed(0)
    for name, buf in model.named_buffers():  # a fresh codebook is all zeros: fill it so codes vary
        if name.endswith(("codebook.embed", "codebook.embed_avg", "codebook.embed_sum")):
            buf.copy_(torch.randn(buf.shape, generator=g))
        elif name.endswith(("cluster_usage", "cluster_size")):  # Mimi: embed = embed_sum / usage
            buf.fill_(1.0)
    return model, cfg, rate


@pytest.mark.parametrize("kind", ["encodec", "mimi"])
def test_codec_units_decode_to_audio(tmp_path, librivox, kind):
    """A tiny EnCodec / Mimi (real architecture, random weights): 1 s of speech -> one codebook of units -> a
    waveform of exactly frames x hop samples at the codec's rate."""
    model, cfg, rate = _tiny_codec(kind)
    model.save_pretrained(tmp_path / kind)
    units, stage = prompt_units(librivox[0][0], 1.0, {"tokenizer": kind, "checkpoint": str(tmp_path / kind),
                                                      "num_codebooks": 1, "device": "cpu", "num_threads": 1})
    assert abs(len(units) - rate) <= 1 and all(0 <= u < 64 for u in units)  # frames per second, one codebook
    wav, sr = units_to_audio(stage, units)
    hop = int(np.prod(cfg.upsampling_ratios)) * (2 if kind == "mimi" else 1)  # Mimi: 25 Hz encoder, 2x frame rate down
    assert sr == cfg.sampling_rate and len(wav) == len(units) * hop
    other, _ = units_to_audio(stage, [(u * 7 + i) % 64 for i, u in enumerate(units)])  # what a model might emit
    assert np.isfinite(wav).all() and len(other) == len(wav) and not np.allclose(other, wav)
