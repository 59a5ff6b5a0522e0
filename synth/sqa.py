"""The ``synth_sqa`` stage: COSMIC/SALMONN-style spoken question answering from transcripts.

Why grounding and dedup gates: SQA recipes keep only answers found in the transcript (a model that
answers from its own knowledge teaches the speech LM to ignore the audio) and de-duplicate questions
of one recording, which LLMs repeat.
"""
from __future__ import annotations

import json
from typing import Any

from ..manifests.schema import dumps_meta
from ..stages.base import Row, reject
from . import filters, gates
from .llm import Outcome
from .llm_stage import LlmStage
from .prompts import ParseError, Prompt, parse_json, sqa_prompt
from .rows import fill_audio_info, load_meta, messages_json, where


def windows(text: str, window_words: int, stride: int | None = None) -> list[str]:
    words = (text or "").split()
    if len(words) <= window_words:
        return [" ".join(words)] if words else []
    stride = stride or window_words
    return [" ".join(words[s:s + window_words]) for s in range(0, max(1, len(words) - window_words + stride), stride)
            if words[s:s + window_words]]


class SqaStage(LlmStage):
    """COSMIC/SALMONN-style spoken QA: per transcript (or window), N question-answer pairs as JSON.

    Each pair becomes a row ``<id>-qa<k>`` (the recording + the question -> the answer). Pairs whose
    answer is not grounded in the transcript (share of content words found < ``min_grounding``) or whose
    question near-duplicates an earlier one of the same recording (cosine >= ``dedup_threshold`` on
    hashed character n-grams, faiss) become rejected rows with the value, so the errors table counts them.
    """

    name = "synth_sqa"

    def __init__(self, n_pairs: int = 3, window_words: int = 150, window_stride: int | None = None,
                 min_grounding: float = 0.5, dedup_threshold: float = 0.9, speak_question: bool = False, **kw: Any):
        super().__init__(**kw)
        self.n, self.window_words, self.window_stride = int(n_pairs), int(window_words), window_stride
        self.min_grounding, self.dedup_threshold, self.speak_question = min_grounding, dedup_threshold, speak_question

    def parse(self, prompt: Prompt, raw: str) -> list[dict[str, str]]:
        v = parse_json(raw, prompt.schema)
        pairs = []
        for k, p in enumerate(v["pairs"]):
            for key in ("question", "answer"):
                g = gates.text_gate(p[key])
                if not g.passed:
                    raise ParseError(f"pairs[{k}].{key}: {g.reason()}")
            pairs.append({"question": p["question"].strip(), "answer": p["answer"].strip()})
        return pairs

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[list[dict[str, Any]]] = [[] for _ in rows]
        jobs: list[tuple[int, int, str]] = []
        for i, row in enumerate(rows):
            wins = windows(row.get("text") or "", self.window_words, self.window_stride)
            bad = fill_audio_info(row) if row.get("audio_path") else None
            if not wins or bad:
                out[i] = [reject(row, self.name, bad or f"{where(row)}: no transcript; run an asr stage first")]
                continue
            jobs += [(i, w, t) for w, t in enumerate(wins)]
        prompts = [sqa_prompt(t, self.n) for _, _, t in jobs]
        results = self.ask(prompts, self.parse)
        pairs: list[list[tuple[int, dict[str, str], str]]] = [[] for _ in rows]
        failures: list[list[tuple[int, Outcome]]] = [[] for _ in rows]
        for (i, w, t), o in zip(jobs, results):
            if o.value is None:
                failures[i].append((w, o))
            else:
                pairs[i] += [(w, p, t) for p in o.value]
        for i, row in enumerate(rows):
            if out[i]:
                continue
            if not pairs[i]:
                out[i] = [self.llm_error(row, failures[i][0][1])]
                continue
            for w, o in failures[i]:  # a failed window of a long transcript is reported, not skipped
                out[i].append(self.llm_error(dict(row, id=f"{row['id']}-w{w}", task="sqa"), o))
            dups = filters.near_duplicates([p["question"] for _, p, _ in pairs[i]], self.dedup_threshold)
            for k, (w, p, t) in enumerate(pairs[i]):
                msgs = [{"role": "user", "text": None, "audio": row.get("audio_path")},
                        {"role": "user", "text": p["question"], "audio": None, "speak": self.speak_question},
                        {"role": "assistant", "text": p["answer"], "audio": None}]
                meta = load_meta(row)
                meta.update(window=w, sqa_source_id=row["id"])
                r = dict(row, id=f"{row['id']}-qa{k}", task="sqa", messages=messages_json(msgs), gate=None,
                         meta=dumps_meta(meta))
                score = filters.grounding(p["answer"], t)
                if k in dups:
                    j, sim = dups[k]
                    reject(r, self.name, f"gate dedup: question {p['question']!r} near-duplicates pair {j} "
                           f"(cosine {sim:.3f} >= {self.dedup_threshold})")
                elif score < self.min_grounding:
                    reject(r, self.name, f"gate grounding: answer {p['answer'][:60]!r} has {score:.2f} of its "
                           f"content words in the transcript (< {self.min_grounding})")
                else:
                    r["gate"] = json.dumps({"grounding": round(score, 3)})
                out[i].append(r)
        return [r for rs in out for r in rs]
