"""Measure a TTS gate on a labelled set it has never seen: accept rate on good clips, catch rate on bad ones.

Why: a gate is only as good as its two error rates, per voice (a gate tuned on one voice can reject
every clip of another). :func:`labelled_set` speaks sentences with each voice and labels five kinds of
clip with the text the gate is given:

* ``correct``: the sentence as spoken (should pass);
* ``substitution``: the audio says one content word differently (a word swapped for another, the way a
  TTS misreads or an LLM text and its audio drift apart; should fail);
* ``truncation``: the first ``keep`` of the correct audio (a cut clip; should fail);
* ``silence``: zeros as long as the correct clip (should fail);
* ``other``: the audio of another sentence (should fail).

:func:`evaluate` runs a gate (anything with ``batch([(text, wav, sr)]) -> [GateResult]`` or a callable)
and returns ``{voice: {kind: [passed, total]}}``; :func:`rates` turns it into the accept / catch rates the
targets are stated in. Used by ``tests/test_synth_gates.py`` (small set) and ``bench/bench_gates.py``.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

KINDS = ("correct", "substitution", "truncation", "silence", "other")
STOPWORDS = frozenset("""a an and are as at be but by do does for from has have how in into is it its me my
not of on or our so than that the their them then there these they this those to too us was we were what
when where which who why will with you your""".split())
SWAPS = ["garden", "pencil", "thunder", "mirror", "blanket", "window", "orange", "rabbit", "candle", "ladder",
         "silver", "doctor", "market", "engine", "forest", "button", "island", "kitten", "pocket", "tunnel"]


@dataclass
class Clip:
    voice: str
    kind: str
    text: str  # what the gate is told the audio says
    wav: np.ndarray
    sample_rate: int


def substitute(text: str, seed: int | str = 0) -> str:
    """``text`` with one content word (4+ letters, not a function word) swapped for an unrelated word."""
    words = text.split()
    core = [re.sub(r"[^\w']", "", w).lower() for w in words]
    slots = [i for i, w in enumerate(core) if len(w) >= 4 and w not in STOPWORDS] or list(range(len(words)))
    rng = random.Random(f"{seed}|{text}")
    i = rng.choice(slots)
    new = rng.choice([s for s in SWAPS if s != core[i]])
    words[i] = re.sub(r"[\w']+", new, words[i], count=1)
    return " ".join(words)


def labelled_set(sentences: Sequence[str], voices: Sequence[str],
                 synthesize: Callable[[list[str], list[str]], list[np.ndarray]], sample_rate: int,
                 kinds: Sequence[str] = KINDS, keep: float = 0.6, seed: int = 0) -> list[Clip]:
    """The five kinds of clip for every (sentence, voice); ``synthesize(texts, voices)`` speaks at ``sample_rate``."""
    texts, vs = [], []
    for v in voices:
        for s in sentences:
            texts.append(s)
            vs.append(v)
            if "substitution" in kinds:
                texts.append(substitute(s, seed))
                vs.append(v)
    wavs = dict(zip(zip(texts, vs), synthesize(texts, vs)))
    clips = []
    for v in voices:
        for k, s in enumerate(sentences):
            good = wavs[(s, v)]
            made = {"correct": good, "truncation": good[: int(len(good) * keep)],
                    "silence": np.zeros_like(good),
                    "other": wavs[(sentences[(k + 1) % len(sentences)], v)]}
            if "substitution" in kinds:
                made["substitution"] = wavs[(substitute(s, seed), v)]
            clips += [Clip(v, kind, s, made[kind], sample_rate) for kind in kinds]
    return clips


def evaluate(gate: Any, clips: Sequence[Clip]) -> dict[str, dict[str, list[int]]]:
    """``{voice: {kind: [passed, total]}}`` of ``gate`` on ``clips`` (batched when the gate has ``batch``)."""
    items = [(c.text, c.wav, c.sample_rate) for c in clips]
    results = gate.batch(items) if hasattr(gate, "batch") else [gate(*it) for it in items]
    table: dict[str, dict[str, list[int]]] = {}
    for c, r in zip(clips, results):
        cell = table.setdefault(c.voice, {}).setdefault(c.kind, [0, 0])
        cell[0] += int(r.passed)
        cell[1] += 1
    return table


def rates(table: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, float]]:
    """Per voice: ``accept`` (correct clips passed) and ``catch_<kind>`` (bad clips failed) as fractions."""
    out: dict[str, dict[str, float]] = {}
    for voice, kinds in table.items():
        row = {}
        for kind, (passed, total) in kinds.items():
            if kind == "correct":
                row["accept"] = passed / total
            else:
                row[f"catch_{kind}"] = (total - passed) / total
        out[voice] = row
    return out


def meets_targets(row: dict[str, float], accept: float = 0.95, catch_substitution: float = 0.90) -> bool:
    """The issue's targets: >= 95 % of correct clips accepted and >= 90 % of one-word substitutions caught."""
    return row.get("accept", 0.0) >= accept and row.get("catch_substitution", 0.0) >= catch_substitution
