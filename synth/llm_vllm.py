"""The ``vllm`` LLM backend: offline ``vllm.LLM`` with JSON-schema guided decoding (GPU only, optional extra).

Why a module of its own: vLLM pins its own torch and needs CUDA, so it is imported only when a recipe
names this backend; ``build_sampling_params`` bridges the old and new vLLM guided-decoding APIs.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from .llm import GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt

VLLM_INSTALL = "pip install 'slmfactory[vllm]' (GPU machines only: vLLM pins its own torch and needs CUDA)"


def vllm_sampling_kwargs(params: GenParams) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` keyword arguments for ``params`` (without the guided-decoding part)."""
    kw: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature,
                          "top_p": params.top_p, "seed": params.seed}
    if params.stop:
        kw["stop"] = list(params.stop)
    return kw


def build_sampling_params(vllm: Any, params: GenParams) -> Any:
    """``SamplingParams`` with JSON-schema guided decoding, for old and new vLLM APIs.

    vLLM >= 0.10.2 spells it ``structured_outputs=StructuredOutputsParams(json=...)``; older releases
    ``guided_decoding=GuidedDecodingParams(json=...)``.
    """
    kw = vllm_sampling_kwargs(params)
    if params.json_schema is not None:
        sp_mod = getattr(vllm, "sampling_params", vllm)
        if hasattr(sp_mod, "StructuredOutputsParams"):
            kw["structured_outputs"] = sp_mod.StructuredOutputsParams(json=params.json_schema)
        elif hasattr(sp_mod, "GuidedDecodingParams"):
            kw["guided_decoding"] = sp_mod.GuidedDecodingParams(json=params.json_schema)
    return vllm.SamplingParams(**kw)


def _import_vllm() -> Any:
    try:
        import vllm  # type: ignore[import-not-found]
    except ImportError as e:
        raise LlmError(f"the vllm backend needs vLLM: {VLLM_INSTALL} ({e})") from e
    return vllm


class VllmLlm(LlmBackend):
    """Offline ``vllm.LLM`` from a local model folder; one engine per GPU actor (``num_gpus: 1`` in the recipe)."""

    name = "vllm"

    def __init__(self, model_path: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = 4096, dtype: str = "auto", trust_remote_code: bool = False,
                 **engine_kwargs: Any):
        if not model_path or not os.path.isdir(model_path):
            raise LlmError(f"vllm model_path {model_path!r} is not a local folder (we never download models)")
        self.vllm = _import_vllm()
        self.model = model_path
        self.engine_kwargs = dict(model=model_path, tensor_parallel_size=tensor_parallel_size,
                                  gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                                  dtype=dtype, trust_remote_code=trust_remote_code, **engine_kwargs)
        self.llm = self.vllm.LLM(**self.engine_kwargs)

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        params = params or GenParams()
        sp = build_sampling_params(self.vllm, params)
        conversations = [as_prompt(p).messages() for p in prompts]
        outs = self.llm.chat(conversations, sp, use_tqdm=False)
        return [o.outputs[0].text if o.outputs else "" for o in outs]
