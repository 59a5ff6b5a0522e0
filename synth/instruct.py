"""The ``synth_instruct`` stage: LLaMA-Omni InstructS2S-style spoken instructions and answers.

Why filter before and after the LLM: published spoken-instruction sets drop code, tables, math and
over-long items because a TTS engine reads them as noise; the rewrite is checked the same way, so an
unspeakable reply is re-asked instead of reaching TTS.
"""
from __future__ import annotations

from typing import Any

from ..stages.base import Row, reject
from . import filters, gates
from .llm_stage import LlmStage
from .prompts import ParseError, Prompt, parse_json, rewrite_prompt
from .rows import load_meta, messages_json, where


def instruction_fields(row: dict[str, Any]) -> tuple[str, str, str]:
    """(instruction, input/context, output/response) from Alpaca or Dolly fields in ``meta`` (or ``text``)."""
    m = load_meta(row)
    instr = m.get("instruction") or m.get("prompt") or row.get("text") or ""
    ctx = m.get("input") or m.get("context") or ""
    out = m.get("output") or m.get("response") or m.get("answer") or ""
    return str(instr), str(ctx), str(out)


class InstructStage(LlmStage):
    """LLaMA-Omni InstructS2S-style: filter unspeakable items, rewrite instruction + answer in spoken style.

    Output rows carry ``text`` = the spoken instruction and two messages marked ``speak`` for the TTS stage
    (the answer only when ``speak_answer``). The original instruction is kept in ``text_original``.
    """

    name = "synth_instruct"

    def __init__(self, max_words: int = 200, max_answer_words: int = 60, speak_answer: bool = True, **kw: Any):
        super().__init__(**kw)
        self.max_words, self.max_answer_words, self.speak_answer = max_words, max_answer_words, speak_answer

    def parse(self, prompt: Prompt, raw: str) -> dict[str, str]:
        v = parse_json(raw, prompt.schema)
        for key in ("instruction", "answer"):
            g = gates.text_gate(v[key])
            if not g.passed:
                raise ParseError(f"{key}: {g.reason()}")
            why = filters.unsuited_for_speech(v[key], max_words=self.max_words)
            if why:
                raise ParseError(f"{key} is not speakable: {why}")
        n = len(v["answer"].split())
        if n > 2 * self.max_answer_words:
            raise ParseError(f"answer has {n} words, more than twice max_answer_words={self.max_answer_words}")
        return {"instruction": v["instruction"].strip(), "answer": v["answer"].strip()}

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[dict[str, Any] | None] = [None] * len(rows)
        todo, prompts = [], []
        for i, row in enumerate(rows):
            instr, ctx, ans = instruction_fields(row)
            if not instr.strip():
                out[i] = reject(row, self.name, f"{where(row)}: no instruction (expected meta.instruction/prompt "
                                f"or text); check the JSONL fields")
                continue
            why = filters.unsuited_for_speech(" ".join([instr, ctx, ans]), max_words=self.max_words)
            if why:
                out[i] = reject(row, self.name, f"{where(row)}: gate filter: {why}; not suited to speech")
                continue
            todo.append(i)
            prompts.append(rewrite_prompt(instr, ctx, ans, self.max_answer_words))
        for i, o in zip(todo, self.ask(prompts, self.parse)):
            row = rows[i]
            if o.value is None:
                out[i] = self.llm_error(row, o)
                continue
            instr = instruction_fields(row)[0]
            msgs = [{"role": "user", "text": o.value["instruction"], "audio": None, "speak": True},
                    {"role": "assistant", "text": o.value["answer"], "audio": None, "speak": self.speak_answer}]
            out[i] = dict(row, text=o.value["instruction"], text_original=instr, messages=messages_json(msgs),
                          task="instruct_s2s" if self.speak_answer else "instruct_s2t", gate=None)
        return [r for r in out if r is not None]
