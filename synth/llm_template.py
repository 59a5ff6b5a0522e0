"""The ``template`` LLM backend: rule-based answers to our own prompts, so the plumbing runs with no model.

Why rules: the demo and the tests must run offline and deterministically. Each prompt task (``rewrite``,
``sqa``, ``paraphrase``) has a rule that reads the prompt's payload and returns the JSON a good model
would, so the same parsers and gates downstream see realistic replies. The data proves the pipeline,
not quality: use a model backend for training data.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Sequence

from . import filters
from .llm import GenParams, LlmBackend, LlmError, as_prompt
from .prompts import Prompt


class TemplateLlm(LlmBackend):
    """Rule-based answers to our own prompts, as JSON text: runs anywhere, deterministic, no model."""

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
            out.append(json.dumps(rule(p.payload), ensure_ascii=False))
        return out


# --- the rules ------------------------------------------------------------------------------------
def _spoken_instruction(instruction: str, context: str) -> str:
    text = filters.clean_for_speech(instruction).rstrip(" .:")
    if not text:
        return ""
    if not text.endswith("?"):
        text = "Could you " + text[0].lower() + text[1:] + "?"
    if context:
        text += " Here it is: " + filters.clean_for_speech(context).rstrip(".") + "."
    return text


def _spoken_answer(answer: str, max_words: int) -> str:
    sents = filters.sentences(filters.clean_for_speech(answer))
    out: list[str] = []
    for s in sents:
        if out and len(" ".join(out + [s]).split()) > max_words:
            break
        out.append(s)
    words = " ".join(out).split()
    return " ".join(words[:max_words])


def _rule_rewrite(p: dict[str, Any]) -> dict[str, Any]:
    return {"instruction": _spoken_instruction(p.get("instruction", ""), p.get("input", "")),
            "answer": _spoken_answer(p.get("output", ""), int(p.get("max_answer_words", 60)))}


def _keyword(sentence: str) -> str:
    words = [w.strip(".,;:!?\"'").lower() for w in sentence.split()]
    cands = [w for w in words if w and w not in filters.STOPWORDS and w.isalpha()]
    return max(cands, key=len) if cands else ""


def _rule_sqa(p: dict[str, Any]) -> dict[str, Any]:
    sents = filters.sentences(p.get("transcript", ""))
    pairs = []
    for s in sents:
        kw, words = _keyword(s), s.rstrip(".!?").split()
        if kw:
            pairs.append({"question": f"What does the speaker say about the {kw}?", "answer": s.rstrip(".") + "."})
        if len(words) >= 6:
            half = len(words) // 2
            start = " ".join(words[:half])
            pairs.append({"question": f"How does the speaker finish the sentence that begins '{start}'?",
                          "answer": " ".join(words[half:]) + "."})
        if len(pairs) >= int(p.get("n", 3)):
            break
    return {"pairs": pairs[: int(p.get("n", 3))]}


_PARA_PREFIXES = ["Please {x}", "Could you {x}", "I'd like you to {x}", "Would you {x}", "Go ahead and {x}"]


def _rule_paraphrase(p: dict[str, Any]) -> dict[str, Any]:
    t = p.get("template", "").strip()
    core = t[0].lower() + t[1:] if t else t
    core = re.sub(r"^(please|could you|would you|can you)\s+", "", core, flags=re.I).rstrip(".?")
    out = []
    for pre in _PARA_PREFIXES:
        s = pre.format(x=core)
        s = s + ("?" if s.split()[0] in ("Could", "Would") else ".")
        if s.lower() != t.lower():
            out.append(s)
    return {"paraphrases": out[: int(p.get("n", 3))]}


RULES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "rewrite": _rule_rewrite, "sqa": _rule_sqa, "paraphrase": _rule_paraphrase,
}
