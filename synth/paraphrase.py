"""Grow the instruction-template pool with LLM paraphrases (used by the ``extend_templates`` prepare hook).

Why not a stage: it runs once per recipe on the driver, over the pool (data), not over rows. Why one
rewording per call with a given opener ("Please", "Could you", ...): a small model asked for several at
once repeats itself; the opener makes the k-th rewording differ from the others.
"""
from __future__ import annotations

from . import filters
from .llm_stage import LlmClient
from .prompts import ParseError, Prompt, paraphrase_prompt, parse_fields


def parse_paraphrase(prompt: Prompt, raw: str) -> str:
    """The ``Reworded:`` line; keeps the ``{text}`` slot exactly once when the template has it; plain English."""
    text = parse_fields(raw, "Reworded")["Reworded"]
    template = prompt.payload["template"]
    if "{text}" in template and text.count("{text}") != 1:
        raise ParseError("the {text} slot was not kept exactly once")
    if "{text}" not in template and "{text}" in text:
        raise ParseError("added a {text} slot the template does not have")
    if "{" in text.replace("{text}", "") or "}" in text.replace("{text}", ""):
        raise ParseError("stray braces")
    why = filters.reply_problem(text.replace("{text}", "something"), 2, len(template.split()) + 12)
    if why:
        raise ParseError(why)
    if text.lower().rstrip(".?!") == template.lower().rstrip(".?!"):
        raise ParseError("same as the template")
    return text


class Paraphraser(LlmClient):
    """Asks the LLM for rewordings of every template; keeps those that pass the checks (and the slot)."""

    def extend(self, pool: dict[str, list[str]], per_template: int = 2,
               max_templates: int | None = None) -> dict[str, list[str]]:
        """The pool plus up to ``per_template`` rewordings of each of the first ``max_templates`` templates per task."""
        out = {k: list(v) for k, v in pool.items()}
        items = [(task, t, n + k) for task, ts in pool.items() for n, t in enumerate(ts[:max_templates])
                 for k in range(per_template)]
        prompts = [paraphrase_prompt(t, opener) for _, t, opener in items]
        for (task, _, _), o in zip(items, self.ask(prompts, parse_paraphrase)):
            if o.value and o.value not in out[task]:
                out[task].append(o.value)
        return out
