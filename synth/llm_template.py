"""The ``template`` LLM backend: rule-based answers to our own prompts, so the plumbing runs with no model.

Why rules: some runs must be instant and fully deterministic (plumbing tests, a smoke run on any machine).
Each prompt task (``spoken``, ``answer``, ``sqa``, ``paraphrase``) has a rule that reads the prompt's
payload and replies in the labelled-line format a model would, so the same parsers and checks downstream
see realistic replies. The data proves the pipeline, not quality: building a stage with this backend logs
a warning and the dataset card says the rows were written by rules, not a language model.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from . import filters
from .llm import GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt


class TemplateLlm(LlmBackend):
    """Rule-based replies to our own prompts (labelled lines): runs anywhere, deterministic, no model."""

    name = "template"
    model = "rules"

    def __init__(self, **_: Any):
        pass

    def generate(self, prompts: Sequence[Prompt | str], params: GenParams | None = None) -> list[str]:
        out = []
        for p in map(as_prompt, prompts):
            rule = RULES.get(p.task)
            if rule is None:
                raise LlmError(f"the template backend has no rule for task {p.task!r}; use a model backend")
            out.append(rule(p.payload))
        return out


# --- the rules ------------------------------------------------------------------------------------
def _rule_spoken(p: dict[str, Any]) -> str:
    text = filters.clean_for_speech(p.get("instruction", "")).rstrip(" .:")
    if text and not text.endswith("?"):
        text = "Could you " + text[0].lower() + text[1:] + "?"
    if text and p.get("input"):
        text += " Here it is: " + filters.clean_for_speech(p["input"]).rstrip(".") + "."
    return f"Rephrased: {text}"


def _rule_answer(p: dict[str, Any]) -> str:
    max_words = int(p.get("max_answer_words", 60))
    out: list[str] = []
    for s in filters.sentences(filters.clean_for_speech(p.get("output", ""))):
        if out and len(" ".join(out + [s]).split()) > max_words:
            break
        out.append(s)
    return "Short answer: " + " ".join(" ".join(out).split()[:max_words])


def _rule_sqa(p: dict[str, Any]) -> str:
    """Pair k: even k asks how the sentence holding the focus word ends; odd k asks about the focus word."""
    sents = filters.sentences(p.get("transcript", ""))
    focus, k = p.get("focus") or "", int(p.get("k", 0))
    sent = next((s for s in sents if focus and focus in s.lower()), sents[0] if sents else "")
    words = sent.rstrip(".!?").split()
    if k % 2 == 0 and len(words) >= 4:
        half = len(words) // 2
        return (f"Question: How does '{' '.join(words[:half])}' end?\n"
                f"Answer: {' '.join(words[half:])}.")
    low = [w.strip(".,;:!?").lower() for w in words]
    at = low.index(focus) if focus in low else 0
    return f"Question: What is said about the {focus or 'topic'}?\n" \
           f"Answer: {' '.join(words[max(0, at - 2):at + 3])}."


def _rule_paraphrase(p: dict[str, Any]) -> str:
    t = p.get("template", "").strip()
    core = re.sub(r"^(please|could you|would you|can you)\s+", "", t[0].lower() + t[1:] if t else t, flags=re.I)
    core = core.rstrip(".?")
    opener = p.get("opener") or "Please"
    s = f"{opener} {core}"
    return "Reworded: " + s + ("?" if opener.split()[0] in ("Could", "Can", "Would") else ".")


RULES: dict[str, Callable[[dict[str, Any]], str]] = {
    "spoken": _rule_spoken, "answer": _rule_answer, "sqa": _rule_sqa, "paraphrase": _rule_paraphrase,
}
