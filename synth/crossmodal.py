"""The ``synth_crossmodal`` stage: SpeechGPT-style ASR/TTS instructions from transcribed segments.

Why a template pool instead of an LLM per row: cross-modal tasks only need varied phrasings of "transcribe
this" and "say this"; the pool is data (``synth/data/templates.json``), grown once per run by the
``extend_templates`` prepare hook, and drawn from by a seeded hash so re-runs give the same data.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..stages.base import Row, Stage, reject
from .rows import fill_audio_info, messages_json, where

DATA = Path(__file__).resolve().parent / "data"


def _hash_index(*parts: Any, n: int) -> int:
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode()).digest()[:8], "big") % n


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
                out.append(reject(row, self.name, f"{where(row)}: cross-modal tasks need audio and a transcript; "
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
