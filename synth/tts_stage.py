"""The ``tts`` stage: speak the messages marked ``speak``, gate the audio, write FLAC.

Row shape: a synthesized item is a segment row whose ``messages`` column is a JSON list of
``{"role", "text", "audio"}`` (``audio``: a file path or None). A message with ``"speak": true`` still
needs speech: :class:`TtsStage` synthesizes it, writes ``<audio_dir>/<id>_<turn>.flac`` and fills ``audio``.
A row without audio gets the first synthesized message as its own ``audio_path``.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import soundfile as sf

from ..stages.base import Row, Stage, reject
from . import filters
from .gates import AlignGate, GateResult, WerGate, duration_gate, rate_gate, text_gate
from .rows import messages_json, where
from .tts import TtsPool
from .voices import VoiceSampler

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TtsStage(Stage):
    """Speak every message marked ``speak`` (or, for rows without messages and audio, the row's ``text``).

    Engine and voices: ``backend`` (default ``piper``, the bundled en_US-joe-medium) speaks unprefixed
    voices; ``espeak:en-gb+f3``-style voices go to that engine (``engine_params`` configure it), so one pool
    can mix engines. User turns draw from ``voices`` (default: the backend's voices) and assistant turns from
    ``assistant_voices`` (default: the same pool), per row id and seed, with per-row settings from
    ``variation`` (``{piper: {length_scale: [...]}, espeak: {rate: [...]}}``; ``rates``/``pitches`` are the
    espeak short form). Every clip is resampled to ``sample_rate`` (default 16000: the rate of the ASR,
    the speech tokenizers and LibriSpeech-style sources, so a chat row never mixes rates; ``null`` keeps
    the backend's own) and the rate is recorded in ``tts_sample_rate``.

    Gates run on the waveform before it is written: ``text``, ``duration``, ``rate``, ``wer`` (round-trip
    ASR with Whisper tiny.en, on by default: ``wer: {backend: whisper, max_wer: 0.5, max_miss: 0.4}``) and
    ``align`` (pocketsphinx forced alignment, opt-in: ``align: {}``). Set a gate to ``false`` to switch it
    off. A row failing any gate is rejected with ``gate <name>: value``.
    """

    name = "tts"

    def __init__(self, audio_dir: str, backend: str = "piper", backend_params: dict[str, Any] | None = None,
                 voices: list[str] | None = None, assistant_voices: list[str] | None = None,
                 rates: list[int] | None = None, pitches: list[int] | None = None,
                 variation: dict[str, dict[str, list[Any]]] | None = None, seed: int = 0,
                 gates: dict[str, Any] | None = None, sample_rate: int | None = 16000,
                 engine_params: dict[str, dict[str, Any]] | None = None):
        self.tts = TtsPool(backend, {**(engine_params or {}), backend: backend_params or {}}, sample_rate)
        self.audio_dir = str(audio_dir)
        pool = voices or self.tts.voices()

        def engine_of(voice: str) -> str:
            return self.tts.route(voice)[0]

        self.user_voices = VoiceSampler(pool, seed, rates, pitches, variation, engine_of)
        # an explicit assistant pool is a deliberate, consistent voice (InstructS2S): no per-row variation
        self.assistant_voices = (VoiceSampler(assistant_voices, seed, engine_of=engine_of) if assistant_voices
                                 else self.user_voices)
        cfg = {"text": {}, "duration": {}, "rate": {}, "align": False, "wer": {}}
        cfg.update(gates or {})
        self.gate_cfg = cfg
        self.align = gates_align(cfg["align"])
        self.wer = wer_gate(cfg["wer"])

    def _jobs(self, row: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, list[int]]:
        raw = row.get("messages")
        if not raw:
            return None, [-1]
        msgs = json.loads(raw)
        return msgs, [j for j, m in enumerate(msgs) if m.get("speak") and not m.get("audio")]

    def _gate_all(self, texts: list[str], wavs: list[np.ndarray]) -> list[tuple[list[GateResult], float]]:
        """Every clip's gate results (cheap gates first; the ASR round trip batched over the survivors)."""
        sr, out = self.tts.sample_rate, []
        for text, wav in zip(texts, wavs):
            dur, res = len(wav) / sr, []
            if self.gate_cfg.get("duration") is not False:
                res.append(duration_gate(dur, **(self.gate_cfg.get("duration") or {})))
            if self.gate_cfg.get("rate") is not False:
                res.append(rate_gate(text, dur, **(self.gate_cfg.get("rate") or {})))
            if self.align is not None and all(r.passed for r in res):
                res.append(self.align(text, wav, sr))
            out.append((res, dur))
        if self.wer is not None:
            todo = [k for k, (res, _) in enumerate(out) if all(r.passed for r in res)]
            for k, r in zip(todo, self.wer.batch([(texts[k], wavs[k], sr) for k in todo])):
                out[k][0].append(r)
        return out

    def process(self, rows: list[Row]) -> list[Row]:
        items: list[tuple[int, int, str, str]] = []  # row, message index (-1: the row's text), text, voice
        parsed: list[list[dict[str, Any]] | None] = []
        dead: set[int] = set()
        for i, row in enumerate(rows):
            try:
                msgs, idx = self._jobs(row)
            except (TypeError, ValueError) as e:
                reject(row, self.name, f"{where(row)}: messages is not valid JSON ({e}); re-run the stage before tts")
                dead.add(i)
                parsed.append(None)
                continue
            parsed.append(msgs)
            if msgs is None and row.get("audio_path"):
                continue  # already has audio and nothing to speak
            for j in idx:
                text = row.get("text") if j < 0 else msgs[j].get("text")
                role = "user" if j < 0 else msgs[j].get("role", "user")
                g = text_gate(text) if self.gate_cfg.get("text") is not False else GateResult("text", True)
                if not g.passed:
                    reject(row, self.name, f"{where(row)} turn {j}: {g.reason()}")
                    dead.add(i)
                    break
                sampler = self.assistant_voices if role == "assistant" else self.user_voices
                items.append((i, j, filters.clean_for_speech(text), sampler.pick(str(row["id"]), role)))
        items = [it for it in items if it[0] not in dead]
        wavs = self.tts.synthesize([t for _, _, t, _ in items], [v for _, _, _, v in items]) if items else []
        gate_values: dict[int, dict[str, Any]] = {}
        pending: dict[int, list[tuple[int, str, np.ndarray, str, float]]] = {}
        judged = self._gate_all([t for _, _, t, _ in items], wavs)
        for (i, j, text, voice), wav, (results, dur) in zip(items, wavs, judged):
            if i in dead:
                continue
            failed = next((r for r in results if not r.passed), None)
            if failed is not None:
                reject(rows[i], self.name, f"{where(rows[i])} turn {j} (voice {voice}): {failed.reason()}")
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
            row["tts_sample_rate"] = self.tts.sample_rate
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


def gates_align(cfg: Any) -> AlignGate | None:
    if cfg is False or cfg is None:
        return None
    return AlignGate(**(cfg or {}))


def wer_gate(cfg: Any) -> WerGate | None:
    """The round-trip gate from its recipe mapping: ``{backend, max_wer, ...}``, other keys go to the ASR backend."""
    if cfg is False or cfg is None:
        return None
    return WerGate.from_config(dict(cfg or {}))


def write_flac(path: str, wav: np.ndarray, sample_rate: int) -> None:
    """Write FLAC atomically (temp file + rename) so a killed worker never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak > 1.0:  # FLAC is integer PCM: scale down rather than clip
        wav = wav / peak
    sf.write(tmp, wav, sample_rate, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)
