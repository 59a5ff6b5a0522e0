"""Prompts the recipes send to an LLM, sized for a 135M model: short, few-shot, one item per call, and a
reply of labelled lines (``Question: ...`` / ``Answer: ...``) that even a small model keeps.

Why this shape (measured with the bundled SmolLM2-135M-Instruct on synth/data/instructions_sample.jsonl and
LibriSpeech-like transcripts): asked for N pairs as JSON, or for a rewrite and an answer in one reply, the
small model broke the format or answered instead of rewriting; with 2-3 worked examples in the chat, one
item per call and one labelled line per field, it keeps the format and stays close to its input. Every
backend (transformers, vLLM, OpenAI-compatible, ray.data.llm, the ``template`` rules) gets the *same*
``Prompt`` (``messages()``) and every reply goes through the *same* parser and checks (``synth/filters.py``);
a reply that fails is re-asked, then rejected with its raw text (see ``llm.generate_validated``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Prompt:
    task: str  # "spoken" | "answer" | "sqa" | "paraphrase" | "raw"
    user: str
    system: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None  # JSON schema for guided decoding (None: the labelled-line format)
    shots: list[tuple[str, str]] = field(default_factory=list)  # worked examples: (user, assistant) turns

    def messages(self) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        for u, a in self.shots:
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        return msgs + [{"role": "user", "content": self.user}]


class ParseError(ValueError):
    """A model reply that is not what we asked for; ``gate`` names the check for the errors table."""

    def __init__(self, message: str, gate: str = "llm"):
        super().__init__(message)
        self.gate = gate


# --- prompt builders ----------------------------------------------------------------------------------
SPOKEN_SYSTEM = "You rephrase requests as casual spoken questions. Never answer the request."
SPOKEN_SHOTS = [
    ("Request: List three colours of the rainbow.", "Rephrased: Hey, can you name three colours of the rainbow?"),
    ("Request: Explain how bees make honey.", "Rephrased: Could you tell me how bees make honey?"),
    ("Request: Summarize the text.\nText: The meeting moved to Friday.",
     "Rephrased: Can you sum this up for me? The meeting moved to Friday."),
]
ANSWER_SYSTEM = "Shorten the answer to one or two plain spoken sentences. Keep its facts."
ANSWER_SHOTS = [
    ("Question: List three colours of the rainbow.\nAnswer: Red, orange and yellow are three of the colours of a "
     "rainbow, which also has green, blue, indigo and violet.", "Short answer: Red, orange and yellow."),
    ("Question: Why do we sleep?\nAnswer: Sleep lets the body repair itself. It also helps the brain store memories.",
     "Short answer: Sleep lets the body repair itself and helps the brain store memories."),
]
SQA_SYSTEM = "You write quiz questions about a recording. The answer uses the speaker's own words."
SQA_SHOTS = [
    ("Recording: The ship sailed into the harbour at dawn.\nAsk about: harbour",
     "Question: Where did the ship sail at dawn?\nAnswer: Into the harbour."),
    ("Recording: Fresh bread was sold at the village fair.\nAsk about: bread",
     "Question: What was sold at the village fair?\nAnswer: Fresh bread."),
]
PARAPHRASE_SYSTEM = "You reword requests to a voice assistant. Keep every word in braces, like {text}, unchanged."
PARAPHRASE_SHOTS = [
    ("Request: Write down what you hear.\nStart with: Please", "Reworded: Please write down the words you hear."),
    ("Request: Read this out loud: {text}\nStart with: Could you", "Reworded: Could you say this aloud: {text}"),
]
OPENERS = ["Please", "Could you", "Can you", "I'd like you to", "Would you", "Go ahead and"]


def spoken_prompt(instruction: str, context: str = "") -> Prompt:
    """LLaMA-Omni InstructS2S-style: the instruction the way a person would say it to an assistant."""
    user = f"Request: {instruction.strip()}" + (f"\nText: {context.strip()}" if context.strip() else "")
    return Prompt("spoken", user, SPOKEN_SYSTEM, {"instruction": instruction, "input": context}, shots=SPOKEN_SHOTS)


def answer_prompt(instruction: str, answer: str, max_answer_words: int = 60) -> Prompt:
    """A concise spoken answer made from the reference answer (its facts, fewer words)."""
    user = f"Question: {instruction.strip()}\nAnswer: {answer.strip()}"
    return Prompt("answer", user, ANSWER_SYSTEM, {"instruction": instruction, "output": answer,
                                                  "max_answer_words": max_answer_words}, shots=ANSWER_SHOTS)


def sqa_prompt(transcript: str, focus: str = "", k: int = 0) -> Prompt:
    """COSMIC/SALMONN-style: one question about ``focus`` (a word of the transcript) and its short answer.

    One pair per call, a different focus word per pair: the questions vary and stay on the recording.
    """
    user = f"Recording: {transcript.strip()}" + (f"\nAsk about: {focus}" if focus else "")
    return Prompt("sqa", user, SQA_SYSTEM, {"transcript": transcript, "focus": focus, "k": k}, shots=SQA_SHOTS)


def paraphrase_prompt(template: str, k: int = 0) -> Prompt:
    """One rewording of an instruction template, opening with the ``k``-th opener (so rewordings differ)."""
    opener = OPENERS[k % len(OPENERS)]
    return Prompt("paraphrase", f"Request: {template.strip()}\nStart with: {opener}", PARAPHRASE_SYSTEM,
                  {"template": template, "k": k, "opener": opener}, shots=PARAPHRASE_SHOTS)


# --- parsing ------------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.S)


def parse_fields(text: str, *keys: str) -> dict[str, str]:
    """``{key: value}`` from ``Key: value`` lines (case-insensitive, first occurrence, markdown bold tolerated).

    Raises ParseError naming the missing label when a key has no non-empty line.
    """
    if text is None or not str(text).strip():
        raise ParseError("empty reply")
    s = _THINK.sub("", str(text)).replace("**", "")
    out: dict[str, str] = {}
    for key in keys:
        m = re.search(rf"^[ \t>*-]*{re.escape(key)}\s*:[ \t]*(.+)$", s, re.I | re.M)
        if not m or not m.group(1).strip():
            raise ParseError(f"no '{key}:' line in the reply")
        out[key] = m.group(1).strip().strip('"').strip()
    return out
