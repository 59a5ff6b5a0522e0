"""Grow the instruction-template pool with LLM paraphrases (used by the ``extend_templates`` prepare hook).

Why not a stage: it runs once per recipe on the driver, over the pool (data), not over rows.
"""
from __future__ import annotations

from . import gates
from .llm_stage import LlmClient
from .prompts import Prompt, parse_json, paraphrase_prompt


class Paraphraser(LlmClient):
    """Asks the LLM for paraphrases of every template; keeps those that pass the text gate (and the slot)."""

    def extend(self, pool: dict[str, list[str]], per_template: int = 2) -> dict[str, list[str]]:
        out = {k: list(v) for k, v in pool.items()}
        items = [(task, t) for task, ts in pool.items() for t in ts]
        prompts = [paraphrase_prompt(t, per_template) for _, t in items]

        def parse(prompt: Prompt, raw: str) -> list[str]:
            v = parse_json(raw, prompt.schema)["paraphrases"]
            if "{text}" in prompt.payload["template"]:
                v = [s for s in v if s.count("{text}") == 1]
            return [s.strip() for s in v if gates.text_gate(s.replace("{text}", "x")).passed]

        for (task, _), o in zip(items, self.ask(prompts, parse)):
            for s in o.value or []:
                if s not in out[task]:
                    out[task].append(s)
        return out
