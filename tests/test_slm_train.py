"""The trainer end to end: exact resume, refused config changes, HF export, text mixing, Ray Train DDP, TWIST init.

Models: a randomly initialised tiny ``LlamaForCausalLM`` (cold init), and once the bundled SmolLM2-135M-Instruct
(``manifests/models.llm_dir()``, converted from its GGUF once) for the TWIST test. Data: packed shards written
by ``slm/synthetic.py`` in the packing hook's format.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from slmfactory.slm.checkpoint import list_checkpoints, load_speech_lm
from slmfactory.slm.metrics import read_metrics
from slmfactory.slm.synthetic import write_packed
from slmfactory.slm.train import TrainConfig, train

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
        "intermediate_size": 64}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return write_packed(tmp_path_factory.mktemp("packed") / "p", 48 * 32, context_length=32, blocks_per_shard=16)


def _cfg(packed, out, **kw) -> TrainConfig:
    base = dict(data=str(packed), out=str(out), init="cold", model=TINY, steps=6, batch_size=2, precision="fp32",
                eval_every=3, checkpoint_every=3, keep_last=2, val_fraction=0.1, progress=False, threads=1)
    return TrainConfig(**{**base, **kw})


def _losses(out) -> list[float]:
    return [r["loss"] for r in read_metrics(out) if "loss" in r]


def test_resume_is_exact_and_refuses_a_changed_config(packed, tmp_path):
    full = train(_cfg(packed, tmp_path / "a"))
    assert full["steps"] == 6 and full["val_loss"] is not None
    # interrupted run: same config, killed after the step-3 checkpoint (simulated by removing what came later)
    train(_cfg(packed, tmp_path / "b"))
    ckpts = list_checkpoints(tmp_path / "b")
    assert [c.name for c in ckpts] == ["step-000003", "step-000006"]
    shutil.rmtree(ckpts[-1])
    resumed = train(_cfg(packed, tmp_path / "b"))
    assert resumed["resumed_from"] == 3
    assert _losses(tmp_path / "b") == pytest.approx(_losses(tmp_path / "a"), abs=1e-6), "resume is not exact"
    assert len(_losses(tmp_path / "a")) == 6
    with pytest.raises(ValueError, match=r"lr: 0.001 -> 0.002"):
        train(_cfg(packed, tmp_path / "b", lr=2e-3))
    assert (tmp_path / "a" / "metrics.png").stat().st_size > 1000
    # the export is a Hugging Face folder + speech_lm.json
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    info = json.loads((tmp_path / "a" / "speech_lm.json").read_text())
    assert info["init"] == "cold" and info["config"]["steps"] == 6 and info["unit_offset"] == 12
    speech = info["special_tokens"][info["markers"]["speech"]]
    new = model.generate(torch.tensor([[speech]]), max_new_tokens=4, do_sample=False, pad_token_id=info["special_tokens"]["[PAD]"])
    assert new.shape[1] > 1
    again, _ = load_speech_lm(tmp_path / "a")
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_text_corpus_share_is_honoured_per_token(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "the", "cat", "sat", "on", "a", "mat", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    data = write_packed(tmp_path / "p", 40 * 32, context_length=32, text_vocab=len(words),
                        text_tokenizer=str(tmp_path / "tokenizer.json"))
    (tmp_path / "text.txt").write_text("the cat sat on a mat\na dog sat on the cat\n" * 20)
    res = train(_cfg(data, tmp_path / "o", steps=5, batch_size=4, eval_every=0, checkpoint_every=5,
                     text_corpus=str(tmp_path / "text.txt"), text_share=0.25))
    assert abs(res["text_token_share"] - 0.25) <= 0.03, res["text_token_share"]


@pytest.mark.slow
def test_ray_train_two_workers_match_one_worker_with_double_accumulation(packed, tmp_path, ray_local):
    """Ray Train TorchTrainer, 2 CPU workers (gloo DDP) vs 1 process with grad_accum=2: same loss curve."""
    one = train(_cfg(packed, tmp_path / "one", steps=4, grad_accum=2, eval_every=0, checkpoint_every=4))
    two = train(_cfg(packed, tmp_path / "two", steps=4, workers=2, eval_every=0, checkpoint_every=4))
    assert two["steps"] == 4
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)


def test_twist_init_from_smollm2_trains_and_exports(tmp_path):
    """Bundled SmolLM2-135M: vocabulary expanded to the packed set's, one step, from_pretrained + generate."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmfactory.manifests.models import llm_dir

    lm = llm_dir()
    n_text = len(AutoTokenizer.from_pretrained(lm))
    wrong = write_packed(tmp_path / "wrong", 64, context_length=16, num_units=8, text_vocab=100)
    with pytest.raises(ValueError, match="text_tokenizer="):
        train(_cfg(wrong, tmp_path / "w", init="smollm2", model={}))
    data = write_packed(tmp_path / "p", 20 * 16, context_length=16, num_units=8, text_vocab=n_text,
                        text_tokenizer=str(lm / "tokenizer.json"))
    res = train(_cfg(data, tmp_path / "o", init="smollm2", model={}, steps=1, batch_size=1, eval_every=0,
                     checkpoint_every=1, keep_last=1, val_max_blocks=1))
    assert res["params"] > 100e6 and res["init"] == "smollm2"
    tok = AutoTokenizer.from_pretrained(tmp_path / "o")
    info = json.loads((tmp_path / "o" / "speech_lm.json").read_text())
    assert len(tok) == info["vocab_size"] == n_text + 4 + 8
    assert tok.convert_tokens_to_ids(["[SPEECH]", "<U0>", "<U7>"]) == [n_text + 1, info["unit_offset"], info["unit_offset"] + 7]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "o")
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == info["vocab_size"] and model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    prompt = tok("the cat", return_tensors="pt").input_ids
    out = model.generate(prompt, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == prompt.shape[1] + 3


def test_minutes_alone_anneals_on_the_clock(packed, tmp_path):
    """``--minutes`` without steps: the cosine follows elapsed time, so the last step's lr is near the floor
    (a step horizon guessed from one timed batch stopped runs mid-schedule when the machine slowed down)."""
    from slmfactory.slm.train import lr_at

    cfg = _cfg(packed, tmp_path / "m", steps=None, minutes=0.05, eval_every=0, checkpoint_every=10_000)
    assert cfg.steps is None
    res = train(cfg)
    rows = [r for r in read_metrics(tmp_path / "m") if "lr" in r]
    assert res["stopped_by"] == "minutes" and len(rows) == res["steps"] > 10
    assert rows[-1]["lr"] < 0.2 * cfg.lr, "the schedule did not anneal by the end of the time budget"
    assert lr_at(50, cfg, 100, clock=1.0) == pytest.approx(cfg.min_lr)
    assert rows[-1]["target_tokens"] <= rows[-1]["tokens"]  # real targets, padding not counted
    assert list_checkpoints(tmp_path / "m")  # stopped by the clock: the state is kept for a resume
