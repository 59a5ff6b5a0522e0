"""What the LLM stages share: the backend built from the recipe's ``llm:`` mapping, the generation
parameters, the re-ask budget, and the rejection that carries the raw reply.

Why the stages build prompts and parse replies but never talk to a server themselves: the backend
(transformers = the bundled SmolLM2 by default / template / vllm / openai) is a parameter
(``llm: {backend: ..., ...}``), loaded once per worker in ``__init__``; the same stage code runs the
offline demo and a GPU cluster.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..stages.base import Stage, reject
from .llm import DEFAULT_BACKEND, GenParams, Outcome, generate_validated, make_llm, model_name
from .prompts import Prompt
from .rows import where


class LlmClient:
    """An LLM backend plus generation params and attempts: ``ask(prompts, parse)`` -> one Outcome each."""

    def __init__(self, llm: dict[str, Any] | None = None, gen: dict[str, Any] | None = None, attempts: int = 3,
                 seed: int = 0):
        spec = dict(llm or {})
        self.llm = make_llm(spec.pop("backend", DEFAULT_BACKEND), **spec)
        self.params = GenParams.from_dict({"seed": seed, **(gen or {})})
        self.attempts = int(attempts)

    def ask(self, prompts: Sequence[Prompt], parse: Callable[[Prompt, str], Any]) -> list[Outcome]:
        return generate_validated(self.llm, prompts, self.params, parse, self.attempts)


class LlmStage(LlmClient, Stage):
    """Base of the row stages that ask an LLM (no ``name``: not a stage of its own)."""

    def llm_error(self, row: dict[str, Any], o: Outcome) -> dict[str, Any]:
        """Reject ``row`` with the check the last reply failed (``gate llm`` / ``grounding`` / ...) and the raw text."""
        raw = (o.raw or "").replace("\n", "\\n")[:300]
        return reject(row, self.name, f"{where(row)}: gate {o.gate}: {model_name(self.llm)} gave no valid reply "
                      f"after {o.attempts} attempt(s): {o.error}; raw: {raw!r}")
