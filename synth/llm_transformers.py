"""The ``transformers`` LLM backend, the default of every synth recipe: a causal LM from a local folder,
batched, CPU or GPU. With no ``model_path`` it runs the bundled SmolLM2-135M-Instruct
(``manifests.models.llm_dir()``: shipped in a registry package, converted once to a local folder).

Why it exists beside vLLM: it runs anywhere torch does, offline, with no server. Batching: prompts are
sorted by length and cut into ``batch_size`` chunks, each one left-padded ``generate`` call (greedy, or
seeded sampling when ``temperature > 0``). Weights load once per process and model folder (a stage built
again in the same worker reuses them). Remote code is never trusted: only architectures ``transformers``
ships load. ``stats`` (prompt/completion tokens, seconds) feed ``bench/bench_synth.py``.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

from ..manifests.models import llm_dir
from .llm import BUNDLED_LLM, GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt

_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # (folder, device, dtype) -> (tokenizer, model)


def load_causal_lm(path: str, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """(tokenizer, model) from a local folder, once per process; left padding, a pad token, eval mode."""
    key = (os.path.realpath(path), device, dtype)
    if key not in _LOADED:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise LlmError(f"transformers dtype {dtype!r}: use one of {sorted(dtypes)}")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtypes[dtype],
                                                  trust_remote_code=False).to(device).eval()
        _LOADED[key] = (tok, lm)
    return _LOADED[key]


class TransformersLlm(LlmBackend):
    """A causal LM from a local folder via ``transformers``; default: the bundled SmolLM2-135M-Instruct."""

    name = "transformers"

    def __init__(self, model_path: str | None = None, device: str = "cpu", dtype: str = "auto", batch_size: int = 8):
        if model_path is None:
            path, self.model = str(llm_dir(BUNDLED_LLM)), BUNDLED_LLM
        elif not os.path.isdir(str(model_path)):
            raise LlmError(f"transformers model_path {model_path!r} is not a local folder; give the folder with "
                           f"config.json, weights and tokenizer, or leave it out for the bundled SmolLM2 (we never "
                           f"download models)")
        else:
            path = self.model = str(model_path)
        self.tok, self.lm = load_causal_lm(path, device, dtype)
        self.device, self.batch_size = device, max(1, int(batch_size))
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    def render(self, p: Prompt) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        turns = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in p.messages()
                 if m["role"] != "system"]
        sys_part = f"{p.system}\n\n" if p.system else ""
        return sys_part + "\n".join(turns) + "\nAssistant:"

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        import torch

        params = params or GenParams()
        texts = [self.render(as_prompt(p)) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        out: list[str] = [""] * len(texts)
        t0 = time.perf_counter()
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            enc = self.tok([texts[i] for i in idx], return_tensors="pt", padding=True).to(self.device)
            torch.manual_seed(params.seed + b)  # same prompts + seed -> same samples
            kw: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": self.tok.pad_token_id}
            if params.temperature > 0:
                kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                gen = self.lm.generate(**enc, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
            self.stats["completion_tokens"] += int((new != self.tok.pad_token_id).sum())
            for i, row in zip(idx, self.tok.batch_decode(new, skip_special_tokens=True)):
                out[i] = _cut_at_stop(row, params.stop)
        self.stats["seconds"] += time.perf_counter() - t0
        return out


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        if s and s in text:
            text = text[: text.index(s)]
    return text
