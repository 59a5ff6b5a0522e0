"""The LLM backend interface, ``generate(prompts, params) -> texts``, and bounded re-asking.

Backends are one module each, found by name through ``LLM_BACKENDS`` (manifests/registry.py): ``transformers``
(the default: the bundled SmolLM2-135M-Instruct, or any local model folder, CPU or GPU), ``template``
(rule-based, no model; ``llm_template.py``), ``vllm`` (offline ``vllm.LLM``, JSON-schema guided decoding
when a prompt carries a schema; GPU only, optional extra) and ``openai`` (any OpenAI-compatible endpoint: ``vllm serve``, llama.cpp server, hosted APIs).
``llm_ray.ray_data_llm_processor`` does cluster-scale batch inference with ``ray.data.llm``. Models
always come from a local path.

Why ``generate_validated``: models, small ones most, sometimes break the format or say something unusable.
Each failed reply is re-asked (a new seed; sampled at ``retry_temperature`` when the first ask was greedy,
since greedy decoding would repeat itself) at most ``attempts`` times in all; after that the item carries
the raw text and the failed check to the errors table.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..manifests.registry import LLM_BACKENDS
from ..manifests.models import bundled
from .backends import build
from .prompts import ParseError, Prompt


class LlmError(RuntimeError):
    """An LLM backend that cannot run or answer, with the fix."""


@dataclass
class GenParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy (deterministic)
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None  # guided decoding where the backend supports it
    retry_temperature: float = 0.7  # re-asks of a greedy (temperature 0) run are sampled at this temperature

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "GenParams":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise LlmError(f"unknown generation params {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


class LlmBackend:
    """Family base of the LLM backends: subclasses set ``name`` (what recipes write) and ``generate``.

    ``model`` names the model in error reasons and the dataset card (``<name>:<model>``).
    """

    name: str
    model: str = ""

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        """One reply text per prompt, in order."""
        raise NotImplementedError


def as_prompt(p: Prompt | str) -> Prompt:
    return p if isinstance(p, Prompt) else Prompt("raw", str(p))


DEFAULT_BACKEND = "transformers"  # with no model_path: the bundled SmolLM2-135M-Instruct
BUNDLED_LLM = "smollm2-135m-instruct"
TEMPLATE_NOTE = "written by the rule-based template generator, not a language model"


def make_llm(backend: str = DEFAULT_BACKEND, **params: Any) -> LlmBackend:
    """The backend registered under ``backend``, built with ``params``; unknown names say what is known.

    The ``template`` backend is announced with a warning: its rows are rules, not model output.
    """
    if backend == "template":
        logging.getLogger("slmfactory.synth").warning(
            "LLM backend 'template': the synthetic text is %s; drop `backend: template` to use the bundled "
            "SmolLM2-135M-Instruct (or give a model)", TEMPLATE_NOTE)
    return build(LLM_BACKENDS, backend, LlmError, params)


def describe_llm(spec: dict[str, Any] | None) -> str:
    """What a recipe's ``llm:`` mapping writes with, for the dataset card (model + license where known)."""
    spec = dict(spec or {})
    backend = spec.get("backend", DEFAULT_BACKEND)
    if backend == "template":
        return f"template (rules; {TEMPLATE_NOTE})"
    where = spec.get("model_path") or spec.get("model")
    if backend == "transformers" and not where:
        return f"transformers: {bundled(BUNDLED_LLM).card_line()}"
    return f"{backend}: {where or '?'}"


def model_name(llm: Any) -> str:
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"


@dataclass
class Outcome:
    value: Any  # parsed reply, or None when every attempt failed
    raw: str  # the last raw reply
    error: str | None = None
    attempts: int = 1
    gate: str = "llm"  # the check the last reply failed (ParseError.gate)


def generate_validated(llm: LlmBackend, prompts: Sequence[Prompt], params: GenParams,
                       parse: Callable[[Prompt, str], Any], attempts: int = 3) -> list[Outcome]:
    """Generate, parse, and re-ask only the failures (seed + attempt) up to ``attempts`` times in total."""
    outcomes: list[Outcome | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(max(1, attempts)):
        if not todo:
            break
        p = replace(params, seed=params.seed + attempt)
        if attempt and params.temperature <= 0 and params.retry_temperature > 0:
            p = replace(p, temperature=params.retry_temperature)
        batch = [prompts[i] for i in todo]
        if p.json_schema is None and len({id(x.schema) for x in batch}) == 1:
            p = replace(p, json_schema=batch[0].schema)
        try:
            texts = llm.generate(batch, p)
        except LlmError as e:  # backend down: every item in this batch fails with the reason
            for i in todo:
                outcomes[i] = Outcome(None, "", str(e), attempt + 1)
            todo = []
            break
        failed = []
        for i, raw in zip(todo, texts):
            try:
                outcomes[i] = Outcome(parse(prompts[i], raw), raw, None, attempt + 1)
            except (ParseError, ValueError) as e:
                outcomes[i] = Outcome(None, raw, str(e), attempt + 1, getattr(e, "gate", "llm"))
                failed.append(i)
        todo = failed
    return [o if o is not None else Outcome(None, "", "not generated") for o in outcomes]
