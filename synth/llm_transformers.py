"""The ``transformers`` LLM backend: a causal LM from a local folder, batched, CPU or GPU.

Why it exists beside vLLM: it runs anywhere torch does (tests use a tiny random model on CPU), and its
``stats`` (prompt/completion tokens, seconds) feed ``bench/bench_synth.py``.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence

from .llm import GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt


class TransformersLlm(LlmBackend):
    """A causal LM from a local folder via ``transformers`` (CPU-capable; tests use a tiny random model)."""

    name = "transformers"

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 8,
                 trust_remote_code: bool = False):
        if not model_path or not os.path.isdir(model_path):
            raise LlmError(f"transformers model_path {model_path!r} is not a local folder; give the folder with "
                           f"config.json, weights and tokenizer (we never download models)")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model_path
        self.tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=trust_remote_code)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token or self.tok.unk_token
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                       "float16": torch.float16}[dtype]
        self.lm = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch_dtype,
                                                       trust_remote_code=trust_remote_code).to(device).eval()
        self.device, self.batch_size = device, max(1, int(batch_size))
        self.stats = {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    def render(self, p: Prompt) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        sys_part = f"{p.system}\n\n" if p.system else ""
        return f"{sys_part}User: {p.user}\nAssistant:"

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        import torch

        params = params or GenParams()
        texts = [self.render(as_prompt(p)) for p in prompts]
        out: list[str] = []
        t0 = time.perf_counter()
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i:i + self.batch_size]
            enc = self.tok(chunk, return_tensors="pt", padding=True).to(self.device)
            torch.manual_seed(params.seed + i)  # same batch + seed -> same samples
            kw: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": self.tok.pad_token_id}
            if params.temperature > 0:
                kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                kw.update(do_sample=False)
            with torch.inference_mode():
                gen = self.lm.generate(**enc, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
            self.stats["completion_tokens"] += int((new != self.tok.pad_token_id).sum())
            for row in self.tok.batch_decode(new, skip_special_tokens=True):
                out.append(_cut_at_stop(row, params.stop))
        self.stats["seconds"] += time.perf_counter() - t0
        return out


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        if s and s in text:
            text = text[: text.index(s)]
    return text
