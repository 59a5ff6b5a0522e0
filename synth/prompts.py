"""Prompts the recipes send to an LLM, the JSON each must answer with, and the parsers that check it.

Why structured prompts: one ``Prompt`` carries both the chat text (for vLLM / HTTP / transformers) and
the task payload, so the offline ``template`` backend (``llm_template.py``) answers the *same* request by
rules and every backend's output goes through the *same* parser. A reply that fails to parse is retried, then rejected
with its raw text (see ``llm.generate_validated``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Prompt:
    task: str  # "rewrite" | "sqa" | "paraphrase" | "raw"
    user: str
    system: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None  # JSON schema the reply must follow (guided decoding when supported)

    def messages(self) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": self.user}]


class ParseError(ValueError):
    """A model reply that is not the JSON we asked for."""


# --- schemas ------------------------------------------------------------------------------------
REWRITE_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 1}, "answer": {"type": "string", "minLength": 1}},
    "required": ["instruction", "answer"],
}
QA_SCHEMA = {
    "type": "object",
    "properties": {"pairs": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "properties": {"question": {"type": "string", "minLength": 1}, "answer": {"type": "string", "minLength": 1}},
        "required": ["question", "answer"]}}},
    "required": ["pairs"],
}
PARAPHRASE_SCHEMA = {
    "type": "object",
    "properties": {"paraphrases": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}},
    "required": ["paraphrases"],
}

SPOKEN_SYSTEM = ("You prepare training data for a voice assistant. Everything you write will be read aloud by a "
                 "text-to-speech engine: plain sentences only, no lists, markdown, code, symbols or URLs. "
                 "Reply with JSON only.")


def rewrite_prompt(instruction: str, context: str = "", answer: str = "", max_answer_words: int = 60) -> Prompt:
    """LLaMA-Omni InstructS2S-style: a spoken-style instruction and a concise, speakable answer."""
    user = (f"Rewrite this instruction the way a person would say it out loud to an assistant, then write a "
            f"concise spoken answer of at most {max_answer_words} words.\n\nInstruction: {instruction}\n")
    if context:
        user += f"Input: {context}\n"
    if answer:
        user += f"Reference answer: {answer}\n"
    user += 'Reply as {"instruction": "...", "answer": "..."}'
    return Prompt("rewrite", user, SPOKEN_SYSTEM,
                  {"instruction": instruction, "input": context, "output": answer,
                   "max_answer_words": max_answer_words},
                  REWRITE_SCHEMA)


def sqa_prompt(transcript: str, n: int = 3) -> Prompt:
    """COSMIC/SALMONN-style: N question-answer pairs answerable from the transcript alone."""
    user = (f"Here is the transcript of a recording:\n\"{transcript}\"\n\nWrite {n} different questions a listener "
            f"could answer from this recording alone, each with a short answer that uses the speaker's own words. "
            'Reply as {"pairs": [{"question": "...", "answer": "..."}]}')
    return Prompt("sqa", user, SPOKEN_SYSTEM, {"transcript": transcript, "n": n}, QA_SCHEMA)


def paraphrase_prompt(template: str, n: int = 3) -> Prompt:
    """Extend the instruction-template pool; every paraphrase must keep the ``{text}`` slot if it has one."""
    slot = " Keep the placeholder {text} exactly once." if "{text}" in template else ""
    user = (f"Give {n} different ways to phrase this request to a voice assistant.{slot}\nRequest: {template}\n"
            'Reply as {"paraphrases": ["..."]}')
    return Prompt("paraphrase", user, SPOKEN_SYSTEM, {"template": template, "n": n}, PARAPHRASE_SCHEMA)


# --- parsing ------------------------------------------------------------------------------------
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_json(text: str, schema: dict[str, Any] | None = None) -> Any:
    """The first JSON value in a reply (code fences and chatter around it tolerated), checked against ``schema``."""
    if text is None or not str(text).strip():
        raise ParseError("empty reply")
    s = str(text)
    m = _FENCE.search(s)
    if m:
        s = m.group(1)
    start = min([i for i in (s.find("{"), s.find("[")) if i >= 0], default=-1)
    if start < 0:
        raise ParseError("no JSON object in the reply")
    try:
        value, _ = json.JSONDecoder().raw_decode(s[start:])
    except json.JSONDecodeError as e:
        raise ParseError(f"invalid JSON: {e.msg} at char {e.pos}") from e
    if schema is not None:
        check_schema(value, schema)
    return value


def check_schema(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema our prompts use: type, properties, required, items, minItems, minLength."""
    types = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int, "boolean": bool}
    t = schema.get("type")
    if t and not isinstance(value, types[t]):
        raise ParseError(f"{where}: expected {t}, got {type(value).__name__}")
    if t == "object":
        for k in schema.get("required", []):
            if k not in value:
                raise ParseError(f"{where}: missing key {k!r}")
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                check_schema(value[k], sub, f"{where}.{k}")
    elif t == "array":
        if len(value) < schema.get("minItems", 0):
            raise ParseError(f"{where}: needs at least {schema['minItems']} items, got {len(value)}")
        for i, item in enumerate(value):
            check_schema(item, schema.get("items", {}), f"{where}[{i}]")
    elif t == "string" and len(value.strip()) < schema.get("minLength", 0):
        raise ParseError(f"{where}: empty string")
