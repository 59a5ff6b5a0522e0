"""Cluster-scale batch inference with ``ray.data.llm``: a dataset processor, not a per-worker backend.

Why it is not an ``LlmBackend``: it maps a whole Ray dataset (rows of chat messages) to generated text
inside Ray's own vLLM actors, instead of answering ``generate(prompts)`` calls from a stage. The recipes'
stages use :class:`~.llm_vllm.VllmLlm` per actor; this is for datasets too large for that.
"""
from __future__ import annotations

from typing import Any

from .llm import GenParams, LlmError
from .llm_vllm import VLLM_INSTALL, vllm_sampling_kwargs


def ray_data_llm_processor(model_path: str, params: GenParams | dict | None = None, concurrency: int = 1,
                           batch_size: int = 64, engine_kwargs: dict[str, Any] | None = None,
                           prompt_column: str = "prompt_messages", output_column: str = "llm_output") -> Any:
    """A ``ray.data.llm`` processor: ``ds = processor(ds)`` maps rows' chat messages to generated text.

    Rows carry ``prompt_column`` (a list of {role, content}); the output text lands in ``output_column``.
    Use it for datasets too large for one process; the recipes' stages use :class:`VllmLlm` per actor.
    """
    params = params if isinstance(params, GenParams) else GenParams.from_dict(params)
    try:
        from ray.data.llm import build_llm_processor, vLLMEngineProcessorConfig
    except ImportError as e:
        raise LlmError(f"ray.data.llm is unavailable ({e}); install `ray[llm]` and {VLLM_INSTALL}") from e
    config = vLLMEngineProcessorConfig(model_source=model_path, engine_kwargs=dict(engine_kwargs or {}),
                                       concurrency=concurrency, batch_size=batch_size)
    sampling = vllm_sampling_kwargs(params)
    if params.json_schema is not None:
        sampling["guided_decoding"] = {"json": params.json_schema}

    def pre(row: dict[str, Any]) -> dict[str, Any]:
        return dict(messages=row[prompt_column], sampling_params=sampling)

    def post(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, output_column: row.get("generated_text", "")}

    return build_llm_processor(config, preprocess=pre, postprocess=post)
