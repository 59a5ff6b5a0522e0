"""Saving and loading a speech LM: a Hugging Face folder plus ``speech_lm.json``; checkpoints that resume exactly.

Why a Hugging Face folder: ``AutoModelForCausalLM.from_pretrained(dir)`` and ``.generate()`` then work in
any tool, and ``speech_lm.json`` (the vocabulary fields of ``dataset_info.json`` + ``init`` + the train
config) tells our generate/eval code which ids are units, markers, EOS. A checkpoint
(``OUT/checkpoints/step-NNNNNN``) is the same folder plus ``optimizer.safetensors`` (AdamW moments) and
``trainer_state.json`` (step, tokens, RNG state, schedule horizon): everything an exact resume needs, with
no pickle. Folders are written under a temporary name and renamed, so a crash never leaves a half checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

VOCAB_KEYS = ("text_vocab_size", "num_units", "unit_offset", "vocab_size", "special_tokens", "markers", "eos", "pad",
              "text_tokenizer", "unit_tokenizer", "context_length", "tokenize")  # tokenize: the unit tokenizer's params

INFO_FILE = "speech_lm.json"
STATE_FILE = "trainer_state.json"
OPT_FILE = "optimizer.safetensors"
# config keys a resume may change: they do not change what is computed, only when it stops or what is logged
RESUMABLE_KEYS = {"out", "minutes", "keep_last", "log_every", "eval_every", "checkpoint_every", "progress",
                  "val_max_blocks", "plot", "threads"}


def speech_lm_info(info: dict[str, Any], init: str, config: dict[str, Any]) -> dict[str, Any]:
    return {**{k: info[k] for k in VOCAB_KEYS if k in info}, "init": init, "config": config}


def save_model(folder: Path, model, tokenizer, meta: dict[str, Any]) -> None:
    """The HF folder: config, safetensors weights, generation config, tokenizer (if any), speech_lm.json."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint is noise
    model = getattr(model, "module", model)  # DDP wrapper
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    (folder / INFO_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))


def load_speech_lm(folder: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """``(model, speech_lm_info)`` of a folder written by ``slmfactory slm train`` (final or a checkpoint)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / INFO_FILE).exists():
        raise FileNotFoundError(f"{folder}: no {INFO_FILE}; give the folder `slmfactory slm train -o` wrote "
                                f"(or one of its checkpoints/step-*)")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    return model, json.loads((folder / INFO_FILE).read_text())


def _atomic_dir(final: Path, write) -> None:
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(out: Path, step: int, model, tokenizer, meta: dict[str, Any], opt: torch.optim.Optimizer,
                    state: dict[str, Any], keep_last: int) -> Path:
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_model(tmp, model, tokenizer, meta)
        tensors, scalars = {}, {}
        for pid, st in opt.state_dict()["state"].items():
            for name, val in st.items():
                if torch.is_tensor(val) and val.dim() > 0:
                    tensors[f"{pid}.{name}"] = val.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{name}"] = float(val)
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp / OPT_FILE))
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step, "optimizer_scalars": scalars}, indent=1))

    final = out / "checkpoints" / f"step-{step:06d}"
    final.parent.mkdir(parents=True, exist_ok=True)
    _atomic_dir(final, write)
    for old in list_checkpoints(out)[:-max(1, keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out: Path) -> list[Path]:
    return sorted(p for p in (Path(out) / "checkpoints").glob("step-*") if (p / STATE_FILE).exists())


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = (set(saved) | set(now)) - RESUMABLE_KEYS
    return sorted(k for k in keys if saved.get(k) != now.get(k))


def load_checkpoint(folder: Path, model, opt: torch.optim.Optimizer, config: dict[str, Any]) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from ``folder``; refuse if the train config changed."""
    from safetensors.torch import load_file

    meta = json.loads((folder / INFO_FILE).read_text())
    diff = config_differences(meta["config"], config)
    if diff:
        shown = ", ".join(f"{k}: {meta['config'].get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ValueError(f"{folder.parent.parent}: holds a run with another config ({shown}); an exact resume needs "
                         f"the same settings. Use the old values, or another -o folder for a new run")
    weights = load_file(str(folder / "model.safetensors"))
    target = getattr(model, "module", model)
    missing, unexpected = target.load_state_dict(weights, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if target.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"{folder}: weights do not fit the model (missing {sorted(set(missing) - tied)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]})")
    target.tie_weights()
    state = json.loads((folder / STATE_FILE).read_text())
    tensors = load_file(str(folder / OPT_FILE))
    torch.set_rng_state(tensors.pop("rng.torch"))
    sd = opt.state_dict()
    new: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        pid, name = key.split(".", 1)
        new.setdefault(int(pid), {})[name] = val
    for key, val in state["optimizer_scalars"].items():
        pid, name = key.split(".", 1)
        new.setdefault(int(pid), {})[name] = torch.tensor(val)
    sd["state"] = new
    opt.load_state_dict(sd)
    return state
