"""Synthesis stages: cross-modal tasks, spoken-instruction rewriting, spoken QA, and TTS with gates.

Row shape: a synthesized item is a segment row whose ``messages`` column is a JSON list of
``{"role", "text", "audio"}`` (``audio``: a file path or None). A message with ``"speak": true`` still
needs speech: :class:`TtsStage` synthesizes it, writes ``<audio_dir>/<id>_<turn>.flac`` and fills ``audio``.
A row without audio gets the first synthesized message as its own ``audio_path``.

Why the LLM stages build prompts and parse replies here but never talk to a server themselves: the
backend (template / transformers / vllm / openai) is a parameter (``llm: {backend: ..., ...}``), loaded
once per worker in ``__init__``; the same stage code runs the offline demo and a GPU cluster.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..manifests.schema import dumps_meta
from ..stages.base import Row, Stage, reject
from . import filters, gates
from .llm import GenParams, Outcome, generate_validated, make_llm, model_name
from .prompts import ParseError, Prompt, parse_json, paraphrase_prompt, rewrite_prompt, sqa_prompt
from .tts import VoiceSampler, make_tts, write_flac

DATA = Path(__file__).resolve().parent / "data"


def load_meta(row: dict[str, Any]) -> dict[str, Any]:
    m = row.get("meta")
    if isinstance(m, dict):
        return dict(m)
    try:
        v = json.loads(m) if m else {}
    except (TypeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


def messages_json(msgs: list[dict[str, Any]]) -> str:
    return json.dumps(msgs, ensure_ascii=False)


def _hash_index(*parts: Any, n: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode()).digest()[:8], "big") % n


def _where(row: dict[str, Any]) -> str:
    return str(row.get("_input") or row.get("audio_path") or row.get("id"))


def fill_audio_info(row: dict[str, Any]) -> str | None:
    """Probe the row's audio header (cheap) to fill duration/sample_rate/num_channels; the error reason or None."""
    from ..manifests.audio import AudioError, probe

    if row.get("duration") and row.get("sample_rate"):
        return None
    try:
        info = probe(row["audio_path"])
    except AudioError as e:
        return str(e)
    row.setdefault("start", 0.0)
    if row.get("start") is None:
        row["start"] = 0.0
    if not row.get("duration"):
        row["duration"] = round(max(0.0, info.duration - float(row["start"] or 0.0)), 4)
    row["sample_rate"], row["num_channels"] = info.sample_rate, info.num_channels
    return None


# --- template pool ----------------------------------------------------------------------------------
def load_templates(path: str | None = None) -> dict[str, list[str]]:
    """{task: [templates]}; ``tts`` templates contain ``{text}``. Default: the pool shipped in synth/data."""
    p = Path(path) if path else DATA / "templates.json"
    try:
        pool = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: cannot read the template pool ({e}); give templates_path to a JSON "
                         f'{{"asr": [...], "tts": [...]}}') from e
    for task, items in pool.items():
        if not isinstance(items, list) or not all(isinstance(t, str) and t.strip() for t in items) or not items:
            raise ValueError(f"{p}: pool {task!r} must be a non-empty list of strings")
        if task == "tts" and not all("{text}" in t for t in items):
            raise ValueError(f"{p}: every 'tts' template needs the {{text}} slot")
    return pool


class CrossModalStage(Stage):
    """SpeechGPT-style cross-modal instructions from transcribed segments: 1 segment -> one row per task.

    ``asr``: user speaks (the segment audio) + "transcribe this"; assistant answers the transcript.
    ``tts``: user asks "say this: <transcript>"; assistant answers with the segment audio.
    Templates are drawn from the pool by a seeded hash of (id, task), so re-runs give the same data.
    """

    name = "synth_crossmodal"

    def __init__(self, tasks: list[str] | None = None, templates_path: str | None = None, seed: int = 0):
        self.tasks = list(tasks or ["asr", "tts"])
        self.pool = load_templates(templates_path)
        missing = [t for t in self.tasks if t not in self.pool]
        if missing:
            raise ValueError(f"tasks {missing} have no templates in the pool (has {sorted(self.pool)})")
        self.seed = seed

    def process(self, rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            text = (row.get("text") or "").strip()
            if not row.get("audio_path") or not text:
                out.append(reject(row, self.name, f"{_where(row)}: cross-modal tasks need audio and a transcript; "
                                  f"run an asr stage first or use a transcribed corpus"))
                continue
            bad = fill_audio_info(row)
            if bad:
                out.append(reject(row, self.name, bad))
                continue
            for task in self.tasks:
                pool = self.pool[task]
                tpl = pool[_hash_index(self.seed, row["id"], task, n=len(pool))]
                r = dict(row, id=f"{row['id']}-{task}", task=f"crossmodal_{task}", gate=None)
                if task == "asr":
                    msgs = [{"role": "user", "text": tpl, "audio": row["audio_path"]},
                            {"role": "assistant", "text": text, "audio": None}]
                else:
                    msgs = [{"role": "user", "text": tpl.replace("{text}", text), "audio": None},
                            {"role": "assistant", "text": None, "audio": row["audio_path"]}]
                r["messages"] = messages_json(msgs)
                out.append(r)
        return out


# --- LLM stages ---------------------------------------------------------------------------------------
class _LlmStage(Stage):
    def __init__(self, llm: dict[str, Any] | None = None, gen: dict[str, Any] | None = None, attempts: int = 3,
                 seed: int = 0):
        spec = dict(llm or {"backend": "template"})
        self.llm = make_llm(spec.pop("backend", "template"), **spec)
        self.params = GenParams.from_dict({"seed": seed, **(gen or {})})
        self.attempts = int(attempts)

    def llm_error(self, row: dict[str, Any], o: Outcome) -> dict[str, Any]:
        raw = (o.raw or "").replace("\n", "\\n")[:300]
        return reject(row, self.name, f"{_where(row)}: gate llm: {model_name(self.llm)} gave no valid reply after "
                      f"{o.attempts} attempt(s): {o.error}; raw: {raw!r}")


def instruction_fields(row: dict[str, Any]) -> tuple[str, str, str]:
    """(instruction, input/context, output/response) from Alpaca or Dolly fields in ``meta`` (or ``text``)."""
    m = load_meta(row)
    instr = m.get("instruction") or m.get("prompt") or row.get("text") or ""
    ctx = m.get("input") or m.get("context") or ""
    out = m.get("output") or m.get("response") or m.get("answer") or ""
    return str(instr), str(ctx), str(out)


class InstructStage(_LlmStage):
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
                out[i] = reject(row, self.name, f"{_where(row)}: no instruction (expected meta.instruction/prompt "
                                f"or text); check the JSONL fields")
                continue
            why = filters.unsuited_for_speech(" ".join([instr, ctx, ans]), max_words=self.max_words)
            if why:
                out[i] = reject(row, self.name, f"{_where(row)}: gate filter: {why}; not suited to speech")
                continue
            todo.append(i)
            prompts.append(rewrite_prompt(instr, ctx, ans, self.max_answer_words))
        for i, o in zip(todo, generate_validated(self.llm, prompts, self.params, self.parse, self.attempts)):
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


def windows(text: str, window_words: int, stride: int | None = None) -> list[str]:
    words = (text or "").split()
    if len(words) <= window_words:
        return [" ".join(words)] if words else []
    stride = stride or window_words
    return [" ".join(words[s:s + window_words]) for s in range(0, max(1, len(words) - window_words + stride), stride)
            if words[s:s + window_words]]


class SqaStage(_LlmStage):
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
                out[i] = [reject(row, self.name, bad or f"{_where(row)}: no transcript; run an asr stage first")]
                continue
            jobs += [(i, w, t) for w, t in enumerate(wins)]
        prompts = [sqa_prompt(t, self.n) for _, _, t in jobs]
        results = generate_validated(self.llm, prompts, self.params, self.parse, self.attempts)
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


class ParaphraseStage(_LlmStage):
    """Not a row stage: helper that asks the LLM to extend a template pool (used by the prepare hook)."""

    name = "synth_paraphrase"

    def extend(self, pool: dict[str, list[str]], per_template: int = 2) -> dict[str, list[str]]:
        out = {k: list(v) for k, v in pool.items()}
        items = [(task, t) for task, ts in pool.items() for t in ts]
        prompts = [paraphrase_prompt(t, per_template) for _, t in items]

        def parse(prompt: Prompt, raw: str) -> list[str]:
            v = parse_json(raw, prompt.schema)["paraphrases"]
            if "{text}" in prompt.payload["template"]:
                v = [s for s in v if s.count("{text}") == 1]
            return [s.strip() for s in v if gates.text_gate(s.replace("{text}", "x")).passed]

        for (task, _), o in zip(items, generate_validated(self.llm, prompts, self.params, parse, self.attempts)):
            for s in o.value or []:
                if s not in out[task]:
                    out[task].append(s)
        return out


# --- TTS ----------------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TtsStage(Stage):
    """Speak every message marked ``speak`` (or, for rows without messages and audio, the row's ``text``).

    Voices: the user turns draw from ``voices`` and the assistant turns from ``assistant_voices`` (default:
    the same pool), per row id and seed. Gates run on the waveform before it is written: ``text``,
    ``duration``, ``rate`` and ``align`` (forced alignment, the offline default) or ``wer`` (round-trip
    ASR with a local Whisper folder: ``wer: {asr_model: /models/whisper-small, max_wer: 0.2}``). Set a
    gate to ``false`` to switch it off. A row failing any gate is rejected with ``gate <name>: value``.
    """

    name = "tts"

    def __init__(self, audio_dir: str, backend: str = "espeak", backend_params: dict[str, Any] | None = None,
                 voices: list[str] | None = None, assistant_voices: list[str] | None = None,
                 rates: list[int] | None = None, pitches: list[int] | None = None, seed: int = 0,
                 gates: dict[str, Any] | None = None):
        self.tts = make_tts(backend, **(backend_params or {}))
        self.audio_dir = str(audio_dir)
        pool = voices or self.tts.voices()
        self.user_voices = VoiceSampler(pool, seed, rates, pitches)
        # an explicit assistant pool is a deliberate, consistent voice (InstructS2S): no rate/pitch variants
        self.assistant_voices = (VoiceSampler(assistant_voices, seed) if assistant_voices
                                 else VoiceSampler(pool, seed, rates, pitches))
        cfg = {"text": {}, "duration": {}, "rate": {}, "align": {}, "wer": False}
        cfg.update(gates or {})
        self.gate_cfg = cfg
        self.align = gates_align(cfg["align"])
        self.wer = None
        if cfg.get("wer"):
            wcfg = dict(cfg["wer"])
            asr = gates.whisper_asr(wcfg.pop("asr_model", None), wcfg.pop("device", "cpu"))
            self.wer = gates.WerGate(asr, **wcfg)

    def _jobs(self, row: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, list[int]]:
        raw = row.get("messages")
        if not raw:
            return None, [-1]
        msgs = json.loads(raw)
        return msgs, [j for j, m in enumerate(msgs) if m.get("speak") and not m.get("audio")]

    def _gate_audio(self, text: str, wav: np.ndarray) -> tuple[list[gates.GateResult], float]:
        sr = self.tts.sample_rate
        dur = len(wav) / sr
        res = []
        if self.gate_cfg.get("duration") is not False:
            res.append(gates.duration_gate(dur, **(self.gate_cfg.get("duration") or {})))
        if self.gate_cfg.get("rate") is not False:
            res.append(gates.rate_gate(text, dur, **(self.gate_cfg.get("rate") or {})))
        if self.align is not None and all(r.passed for r in res):
            res.append(self.align(text, wav, sr))
        if self.wer is not None and all(r.passed for r in res):
            res.append(self.wer(text, wav, sr))
        return res, dur

    def process(self, rows: list[Row]) -> list[Row]:
        items: list[tuple[int, int, str, str]] = []  # row, message index (-1: the row's text), text, voice
        parsed: list[list[dict[str, Any]] | None] = []
        dead: set[int] = set()
        for i, row in enumerate(rows):
            try:
                msgs, idx = self._jobs(row)
            except (TypeError, ValueError) as e:
                reject(row, self.name, f"{_where(row)}: messages is not valid JSON ({e}); re-run the stage before tts")
                dead.add(i)
                parsed.append(None)
                continue
            parsed.append(msgs)
            if msgs is None and row.get("audio_path"):
                continue  # already has audio and nothing to speak
            for j in idx:
                text = row.get("text") if j < 0 else msgs[j].get("text")
                role = "user" if j < 0 else msgs[j].get("role", "user")
                g = gates.text_gate(text) if self.gate_cfg.get("text") is not False else gates.GateResult("text", True)
                if not g.passed:
                    reject(row, self.name, f"{_where(row)} turn {j}: {g.reason()}")
                    dead.add(i)
                    break
                sampler = self.assistant_voices if role == "assistant" else self.user_voices
                items.append((i, j, filters.clean_for_speech(text), sampler.pick(str(row["id"]), role)))
        items = [it for it in items if it[0] not in dead]
        wavs = self.tts.synthesize([t for _, _, t, _ in items], [v for _, _, _, v in items]) if items else []
        gate_values: dict[int, dict[str, Any]] = {}
        pending: dict[int, list[tuple[int, str, np.ndarray, str, float]]] = {}
        for (i, j, text, voice), wav in zip(items, wavs):
            if i in dead:
                continue
            results, dur = self._gate_audio(text, wav)
            failed = next((r for r in results if not r.passed), None)
            if failed is not None:
                reject(rows[i], self.name, f"{_where(rows[i])} turn {j} (voice {voice}): {failed.reason()}")
                dead.add(i)
                continue
            gate_values.setdefault(i, {})[str(j)] = {r.name: r.value for r in results}
            pending.setdefault(i, []).append((j, voice, wav, text, dur))
        for i, row in enumerate(rows):
            if i in dead or i not in pending:
                continue
            msgs = parsed[i]
            stem = _SAFE.sub("_", str(row["id"]))
            voices = []
            for j, voice, wav, _text, dur in pending[i]:
                path = os.path.join(self.audio_dir, f"{stem}_{j if j >= 0 else 'text'}.flac")
                write_flac(path, wav, self.tts.sample_rate)
                voices.append(voice)
                if msgs is not None and j >= 0:
                    msgs[j]["audio"] = path
                    msgs[j].pop("speak", None)
                if not row.get("audio_path"):
                    row.update(audio_path=path, start=0.0, duration=round(dur, 4), sample_rate=self.tts.sample_rate,
                               num_channels=1)
            if msgs is not None:
                for m in msgs:
                    m.pop("speak", None)
                row["messages"] = messages_json(msgs)
            row["voice"] = voices[0]
            prev = json.loads(row["gate"]) if row.get("gate") else {}
            row["gate"] = json.dumps({**prev, "tts": gate_values.get(i, {})}, sort_keys=True)
        for i, row in enumerate(rows):  # rows with nothing left to speak: drop the speak flags
            if i not in dead and i not in pending and parsed[i] is not None:
                for m in parsed[i]:
                    m.pop("speak", None)
                row["messages"] = messages_json(parsed[i])
        return rows


def gates_align(cfg: Any) -> gates.AlignGate | None:
    if cfg is False or cfg is None:
        return None
    return gates.AlignGate(**(cfg or {}))
