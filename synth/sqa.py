"""The ``synth_sqa`` stage: COSMIC/SALMONN-style spoken question answering from transcripts.

Why one question per call, each about a different word of the transcript: a small model asked for N pairs
at once repeats one template or breaks the format; a focus word per call makes the questions vary and keeps
them on the recording. Why grounding and dedup gates: SQA recipes keep only answers found in the transcript
(a model that answers from its own knowledge teaches the speech LM to ignore the audio) and de-duplicate
questions of one recording, which LLMs repeat. An ungrounded or malformed reply is re-asked (bounded), then
rejected with its raw text.
"""
from __future__ import annotations

import json
from typing import Any

from ..manifests.schema import dumps_meta
from ..stages.base import Row, reject
from . import filters
from .llm_stage import LlmStage
from .prompts import ParseError, Prompt, parse_fields, sqa_prompt
from .rows import fill_audio_info, load_meta, messages_json, where


def windows(text: str, window_words: int, stride: int | None = None) -> list[str]:
    words = (text or "").split()
    if len(words) <= window_words:
        return [" ".join(words)] if words else []
    stride = stride or window_words
    return [" ".join(words[s:s + window_words]) for s in range(0, max(1, len(words) - window_words + stride), stride)
            if words[s:s + window_words]]


def readable(transcript: str) -> str:
    """An all-caps transcript (LibriSpeech) in sentence case, with a full stop: what models read best."""
    t = " ".join((transcript or "").split())
    if t and t.upper() == t:
        t = t.lower()
        t = t[0].upper() + t[1:]
    return t if not t or t[-1] in ".!?" else t + "."


class SqaStage(LlmStage):
    """COSMIC/SALMONN-style spoken QA: per transcript (or window), N question-answer pairs, one LLM call each.

    Each pair becomes a row ``<id>-qa<j>`` (the recording + the question -> the answer). A reply is checked
    (``Question:``/``Answer:`` lines, English-looking, question ends with "?", neither copies the whole
    transcript, the answer says more than the question's words, no negation the transcript lacks, answer content words found in the transcript >=
    ``min_grounding``, question's >= ``min_question_grounding``) and re-asked up to ``attempts`` times; a pair that never passes, or whose
    question near-duplicates an earlier one of the same recording (cosine >= ``dedup_threshold`` on hashed
    character n-grams, faiss), becomes a rejected row with the reason and the raw reply.
    """

    name = "synth_sqa"

    def __init__(self, n_pairs: int = 3, window_words: int = 150, window_stride: int | None = None,
                 min_grounding: float = 0.5, min_question_grounding: float = 0.5, dedup_threshold: float = 0.9,
                 max_answer_words: int = 30, speak_question: bool = False, **kw: Any):
        super().__init__(**kw)
        self.n, self.window_words, self.window_stride = int(n_pairs), int(window_words), window_stride
        self.min_grounding, self.min_question_grounding = min_grounding, min_question_grounding
        self.dedup_threshold, self.max_answer_words, self.speak_question = dedup_threshold, max_answer_words, \
            speak_question

    def parse(self, prompt: Prompt, raw: str) -> dict[str, Any]:
        v = parse_fields(raw, "Question", "Answer")
        q, a, t = v["Question"], v["Answer"], prompt.payload["transcript"]
        why = filters.reply_problem(q, 3, 30) or filters.reply_problem(a, 1, self.max_answer_words)
        if why:
            raise ParseError(why)
        if not q.endswith("?"):
            raise ParseError("the question does not end with '?'")
        if filters.copies(q, t) or filters.copies(a, t):
            raise ParseError("copies the whole transcript")
        if set(filters.content_words(a)) <= set(filters.content_words(q)):
            raise ParseError("the answer only repeats words of the question")
        if filters.negations(a) - filters.negations(t):
            raise ParseError(f"the answer {a[:60]!r} adds a negation the transcript does not have", gate="grounding")
        score, qscore = filters.grounding(a, t), filters.grounding(q, t)
        if score < self.min_grounding:
            raise ParseError(f"answer {a[:60]!r} has {score:.2f} of its content words in the transcript "
                             f"(< {self.min_grounding})", gate="grounding")
        if qscore < self.min_question_grounding:
            raise ParseError(f"question {q[:60]!r} has {qscore:.2f} of its content words in the transcript "
                             f"(< {self.min_question_grounding})", gate="grounding")
        return {"question": q, "answer": a, "grounding": round(score, 3)}

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[list[dict[str, Any]]] = [[] for _ in rows]
        jobs: list[tuple[int, int]] = []  # (row index, window index)
        prompts: list[Prompt] = []
        for i, row in enumerate(rows):
            wins = windows(row.get("text") or "", self.window_words, self.window_stride)
            bad = fill_audio_info(row) if row.get("audio_path") else None
            if not wins or bad:
                out[i] = [reject(row, self.name, bad or f"{where(row)}: no transcript; run an asr stage first")]
                continue
            for w, t in enumerate(wins):
                t = readable(t)
                for k, focus in enumerate(filters.focus_words(t, self.n)):
                    jobs.append((i, w))
                    prompts.append(sqa_prompt(t, focus, k))
        results = self.ask(prompts, self.parse)
        done = [0] * len(rows)
        questions: list[list[tuple[int, str]]] = [[] for _ in rows]  # (position in out[i], question)
        for (i, w), o in zip(jobs, results):
            row = rows[i]
            j, done[i] = done[i], done[i] + 1
            meta = load_meta(row)
            meta.update(window=w, sqa_source_id=row["id"])
            r = dict(row, id=f"{row['id']}-qa{j}", task="sqa", gate=None, meta=dumps_meta(meta))
            if o.value is None:
                out[i].append(self.llm_error(r, o))
                continue
            p = o.value
            r["messages"] = messages_json([
                {"role": "user", "text": None, "audio": row.get("audio_path")},
                {"role": "user", "text": p["question"], "audio": None, "speak": self.speak_question},
                {"role": "assistant", "text": p["answer"], "audio": None}])
            r["gate"] = json.dumps({"grounding": p["grounding"]})
            questions[i].append((len(out[i]), p["question"]))
            out[i].append(r)
        for i, qs in enumerate(questions):
            for k, (j, sim) in filters.near_duplicates([q for _, q in qs], self.dedup_threshold).items():
                r = out[i][qs[k][0]]
                r["gate"] = None
                reject(r, self.name, f"gate dedup: question {qs[k][1]!r} near-duplicates {out[i][qs[j][0]]['id']} "
                       f"(cosine {sim:.3f} >= {self.dedup_threshold})")
        return [r for rs in out for r in rs]
