"""Where a speech LM starts: a text LM with its vocabulary expanded (TWIST / Slam), or a small random model.

TWIST's and Slam's main lever is starting from a text LM: its embeddings and layers already model the
language the transcripts speak. The packed set's vocabulary (``dataset_info.json``, ``stages/interleave.Vocab``)
is ``[0, text_vocab_size)`` = the text tokenizer's ids, then the specials, then the units; so the text LM must be
the one whose tokenizer packed the text, and its embedding matrix is resized to ``vocab_size``. New rows
(specials, units, and any padding rows the LM carried past its tokenizer) are drawn from the text embeddings'
own per-dimension mean and std (seeded), so they look like text embeddings: they start as far apart as
words are. Measured on run E of docs/slm_results.md (SmolLM2, 512-token steps): mean + 0.02 std rows - all
units nearly the same vector - gave train loss 10.9 over steps 10-20 and 4.8 over 30-40; rows at 1.0 std
gave 4.1 and 2.3 (cold init: 7.2 and 4.1), and the first loss fell from 12.9 to 10.2 (ln V = 10.8).
Cold init is a small ``LlamaConfig`` model, so every downstream path (save, ``from_pretrained``,
``generate``) uses one Hugging Face model class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

BUNDLED = "smollm2"
COLD = "cold"
# cold-model knobs (TrainConfig.model overrides these)
COLD_DEFAULTS: dict[str, Any] = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                                 "num_key_value_heads": 4, "intermediate_size": 768}


def resolve_init(init: str) -> str:
    """``smollm2`` -> the bundled SmolLM2-135M-Instruct folder; ``cold`` stays; anything else is a local path."""
    if init == COLD:
        return COLD
    if init in (BUNDLED, "smollm2-135m-instruct"):
        from ..manifests.models import llm_dir

        return str(llm_dir())
    if not (Path(init) / "config.json").exists():
        raise FileNotFoundError(f"--init {init}: not a Hugging Face model folder (no config.json); give a local "
                                f"causal-LM directory, 'smollm2' (bundled) or 'cold'")
    return str(Path(init).resolve())


def special_names(info: dict[str, Any]) -> list[str]:
    """Specials in id order (they follow the text ids)."""
    return [name for name, _ in sorted(info["special_tokens"].items(), key=lambda kv: kv[1])]


def unit_names(info: dict[str, Any]) -> list[str]:
    return [f"<U{i}>" for i in range(int(info["num_units"]))]


def cold_model(info: dict[str, Any], overrides: dict[str, Any] | None = None, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    knobs = {**COLD_DEFAULTS, **(overrides or {})}
    cfg = LlamaConfig(vocab_size=int(info["vocab_size"]), max_position_embeddings=max(8192, 4 * int(info["context_length"])),
                      tie_word_embeddings=True, eos_token_id=_id(info, info["eos"]), pad_token_id=_id(info, info["pad"]),
                      bos_token_id=None, **knobs)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def _id(info: dict[str, Any], name: str) -> int:
    return int(info["special_tokens"][name])


def check_tokenizer(lm_dir: str, info: dict[str, Any], tok) -> None:
    """Refuse a packed set whose text ids are not this LM's tokenizer ids (the embeddings would mean nothing)."""
    want = int(info["text_vocab_size"])
    have = len(tok)
    fix = (f"re-run the interleaved recipe with this LM's tokenizer: `slmfactory run interleaved ... "
           f"text_tokenizer={lm_dir}`, or train with --init cold")
    if want != have:
        raise ValueError(f"the packed set's text tokenizer has {want} ids ({(info.get('text_tokenizer') or {}).get('path')}) "
                         f"but {lm_dir} has {have}: the text ids would not match; {fix}")
    path = (info.get("text_tokenizer") or {}).get("path")
    if path and Path(path).exists():
        from ..stages.texttok import TextTokenizer

        probe = "the quick brown fox said forty two words to seven people"
        if TextTokenizer(path).encode(probe) != tok.encode(probe, add_special_tokens=False):
            raise ValueError(f"{path} and {lm_dir} tokenize text differently (same size, different ids); {fix}")


def twist_model(lm_dir: str, info: dict[str, Any], seed: int = 0, noise: float = 1.0):
    """The text LM at ``lm_dir`` with embeddings resized to ``info['vocab_size']`` and its expanded tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    check_tokenizer(lm_dir, info, tok)
    model = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    n_text, n_new = int(info["text_vocab_size"]), int(info["vocab_size"])
    model.resize_token_embeddings(n_new, mean_resizing=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mats = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != mats[0].data_ptr():  # untied head: expand it too
            mats.append(out.weight)
        for w in mats:
            text = w[:n_text]
            mean, std = text.mean(0), text.std(0)
            fresh = torch.randn(n_new - n_text, w.shape[1], generator=gen) * std * noise
            w[n_text:] = mean + fresh.to(w.dtype)
    tok = expand_tokenizer(tok, info)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = _id(info, info["eos"])
        cfg.pad_token_id = _id(info, info["pad"])
    model.config.vocab_size = n_new
    return model, tok


def expand_tokenizer(tok, info: dict[str, Any]):
    """Add the specials and ``<U0>..<U{K-1}>`` so that tokenizer ids == model ids (checked)."""
    added = special_names(info) + unit_names(info)
    tok.add_tokens(added, special_tokens=True)
    ids = tok.convert_tokens_to_ids(added)
    want = list(range(int(info["text_vocab_size"]), int(info["vocab_size"])))
    if ids != want:
        raise ValueError("the text LM's tokenizer already holds some of the speech tokens "
                         f"({[n for n, i, w in zip(added, ids, want) if i != w][:5]}...); use other markers "
                         "(interleave text_marker=/speech_marker=) so ids stay aligned")
    tok.eos_token = info["eos"]
    tok.pad_token = info["pad"]
    return tok


def build_model(init: str, info: dict[str, Any], overrides: dict[str, Any] | None = None, seed: int = 0):
    """``(model, tokenizer or None, init label)`` for ``init`` = ``cold`` | ``smollm2`` | a local HF folder."""
    where = resolve_init(init)
    if where == COLD:
        return cold_model(info, overrides, seed), None, COLD
    model, tok = twist_model(where, info, seed)
    return model, tok, where
