"""The ``synth_instruct`` stage: LLaMA-Omni InstructS2S-style spoken instructions and answers.

Why filter before and after the LLM: published spoken-instruction sets drop code, tables, math and
over-long items because a TTS engine reads them as noise; the rewrite is checked the same way, so an
unspeakable reply is re-asked instead of reaching TTS. Why two small prompts per item (the spoken request,
then a short answer made from the reference answer) rather than one: asked for both at once, the bundled
135M model answered the request instead of rewording it. The answer must keep the reference's facts
(content-word overlap, ``min_answer_grounding``), so a small model cannot invent one.
"""
from __future__ import annotations

from typing import Any

from ..stages.base import Row, reject
from . import filters
from .llm_stage import LlmStage
from .prompts import ParseError, Prompt, answer_prompt, parse_fields, spoken_prompt
from .rows import load_meta, messages_json, where

REQUEST_OPENERS = {"please", "hey", "so", "tell", "give", "help", "let's", "could", "can", "would", "will"}


def instruction_fields(row: dict[str, Any]) -> tuple[str, str, str]:
    """(instruction, input/context, output/response) from Alpaca or Dolly fields in ``meta`` (or ``text``)."""
    m = load_meta(row)
    instr = m.get("instruction") or m.get("prompt") or row.get("text") or ""
    ctx = m.get("input") or m.get("context") or ""
    out = m.get("output") or m.get("response") or m.get("answer") or ""
    return str(instr), str(ctx), str(out)


def _check(text: str, max_words: int, min_words: int = 1) -> None:
    why = filters.reply_problem(text, min_words, max_words) or filters.unsuited_for_speech(text, max_words=max_words)
    if why:
        raise ParseError(why)


class InstructStage(LlmStage):
    """LLaMA-Omni InstructS2S-style: filter unspeakable items, reword the instruction as spoken, shorten the answer.

    Output rows carry ``text`` = the spoken instruction and two messages marked ``speak`` for the TTS stage
    (the answer only when ``speak_answer``). The original instruction is kept in ``text_original``. Items
    with no reference answer are rejected (gate filter): the answer is made from it, never invented.
    """

    name = "synth_instruct"

    def __init__(self, max_words: int = 200, max_answer_words: int = 60, speak_answer: bool = True,
                 min_answer_grounding: float = 0.5, min_request_overlap: float = 0.5, **kw: Any):
        super().__init__(**kw)
        self.max_words, self.max_answer_words, self.speak_answer = max_words, max_answer_words, speak_answer
        self.min_answer_grounding, self.min_request_overlap = min_answer_grounding, min_request_overlap

    def parse(self, prompt: Prompt, raw: str) -> str:
        p = prompt.payload
        if prompt.task == "spoken":
            text = parse_fields(raw, "Rephrased")["Rephrased"]
            source = f"{p['instruction']} {p.get('input') or ''}"
            _check(text, min(self.max_words, len(source.split()) + 15), 3)
            first = text.lower().replace(",", " ").split()[0]
            if "?" not in text and first not in REQUEST_OPENERS | {p["instruction"].split()[0].lower()}:
                raise ParseError("does not read as a request (no question, no request opener); it may be an answer")
            kept = filters.grounding(p["instruction"], text)
            if kept < self.min_request_overlap:
                raise ParseError(f"keeps {kept:.2f} of the instruction's content words "
                                 f"(< {self.min_request_overlap})", gate="grounding")
            return text
        text = parse_fields(raw, "Short answer")["Short answer"]
        _check(text, self.max_answer_words)
        score = filters.grounding(text, p["output"])
        if score < self.min_answer_grounding:
            raise ParseError(f"answer {text[:60]!r} has {score:.2f} of its content words in the reference answer "
                             f"(< {self.min_answer_grounding})", gate="grounding")
        return text

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
            if not why and not ans.strip():
                why = "no reference answer (output/response) to make the spoken answer from"
            if why:
                out[i] = reject(row, self.name, f"{where(row)}: gate filter: {why}; not suited to speech")
                continue
            todo.append(i)
            prompts += [spoken_prompt(instr, ctx), answer_prompt(instr, filters.clean_for_speech(ans),
                                                                 self.max_answer_words)]
        results = self.ask(prompts, self.parse)
        for n, i in enumerate(todo):
            row, said, answer = rows[i], results[2 * n], results[2 * n + 1]
            bad = said if said.value is None else answer if answer.value is None else None
            if bad is not None:
                out[i] = self.llm_error(row, bad)
                continue
            msgs = [{"role": "user", "text": said.value, "audio": None, "speak": True},
                    {"role": "assistant", "text": answer.value, "audio": None, "speak": self.speak_answer}]
            out[i] = dict(row, text=said.value, text_original=instruction_fields(row)[0],
                          messages=messages_json(msgs), task="instruct_s2s" if self.speak_answer else "instruct_s2t",
                          gate=None)
        return [r for r in out if r is not None]
