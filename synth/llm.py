"""The LLM backend interface, ``generate(prompts, params) -> texts``, and bounded re-asking.

Backends are one module each, found by name through ``LLM_BACKENDS`` (manifests/registry.py): ``template``
(offline rules, no model: the demo; ``llm_template.py``), ``transformers`` (a local model folder, CPU or
GPU), ``vllm`` (offline ``vllm.LLM`` with JSON-schema guided decoding; GPU only, optional extra) and
``openai`` (any OpenAI-compatible endpoint: ``vllm serve``, llama.cpp server, hosted APIs).
``llm_ray.ray_data_llm_processor`` does cluster-scale batch inference with ``ray.data.llm``. Models
always come from a local path.

Why ``generate_validated``: models sometimes answer with broken JSON. Each malformed reply is re-asked
(a new seed) at most ``attempts`` times; after that the item carries the raw text to the errors table.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..manifests.registry import LLM_BACKENDS
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


def make_llm(backend: str = "template", **params: Any) -> LlmBackend:
    """The backend registered under ``backend``, built with ``params``; unknown names say what is known."""
    return build(LLM_BACKENDS, backend, LlmError, params)


def model_name(llm: Any) -> str:
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"


@dataclass
class Outcome:
    value: Any  # parsed reply, or None when every attempt failed
    raw: str  # the last raw reply
    error: str | None = None
    attempts: int = 1


def generate_validated(llm: LlmBackend, prompts: Sequence[Prompt], params: GenParams,
                       parse: Callable[[Prompt, str], Any], attempts: int = 3) -> list[Outcome]:
    """Generate, parse, and re-ask only the failures (seed + attempt) up to ``attempts`` times in total."""
    outcomes: list[Outcome | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(max(1, attempts)):
        if not todo:
            break
        p = replace(params, seed=params.seed + attempt)
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
                outcomes[i] = Outcome(None, raw, str(e), attempt + 1)
                failed.append(i)
        todo = failed
    return [o if o is not None else Outcome(None, "", "not generated") for o in outcomes]
