"""Speech-text training sequences in the four formats of the literature.

Formats (``format`` column): ``speech`` (units only), ``text`` (text only), ``speech_text`` / ``text_speech``
(concatenated, either order) and ``interleaved`` (modality switches at word boundaries). Tokens share one
id space (vocabulary expansion, as in SpiRit-LM): text ids first, then the special tokens, then unit ids
offset past them — see :class:`Vocab`.

Mixture per TOKEN, not per row: the stage builds each row's sequence in every mixture format it can take,
draws one with probability ~ share / length (``format``/``tokens``: each format's expected token share is the
configured one) and keeps the others (``alt_formats``/``alt_tokens``); the packer (``pack.pack_shards``) then
picks per row, in manifest order, the candidate that keeps achieved token shares closest to the mixture, which
makes them exact to within one sequence. Drawing formats per row instead gives short formats far fewer tokens
(text got 0.08 of the tokens against 0.20 configured). Reproducible: the draw and the switch points come from a
generator seeded by ``sha256(seed, row id)``, so nothing depends on batching, workers, sharding or row order.

Interleaving modes (slamkit's, inspired by SpiRit-LM):
* ``random``: each word is speech with probability ``p`` (switch probability);
* ``span``: alternating runs whose lengths are uniform in ``[min_span, max_span]`` words;
* ``poisson`` (default): non-overlapping speech runs of Poisson(``lam``) words until ``ceil(eta*N)`` words
  are speech.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .base import Row, Stage, reject
from .textnorm import normalized_words
from .wordspans import word_unit_spans

FORMATS = ("speech", "text", "speech_text", "text_speech", "interleaved")
# RECIPES.md presets. slamkit: train_inter_scale.yaml mixture (text .20 / interleaved .54 / speech .25,
# renormalised), poisson λ=10, η=0.3, context 2048, <text>/<speech> markers. spiritlm: [Text]/[Speech]
# markers; its switch statistics are not published in RECIPES.md, so the span mode here is our choice.
PRESETS: dict[str, dict[str, Any]] = {
    "slamkit": {"mode": "poisson", "lam": 10.0, "eta": 0.3, "text_marker": "<text>", "speech_marker": "<speech>",
                "mixture": {"text": 0.20, "interleaved": 0.54, "speech": 0.25}, "context_length": 2048},
    "spiritlm": {"mode": "span", "min_span": 1, "max_span": 10, "text_marker": "[Text]", "speech_marker": "[Speech]",
                 "mixture": {"text": 0.20, "interleaved": 0.54, "speech": 0.25}, "context_length": 2048},
    "default": {"mode": "poisson", "lam": 10.0, "eta": 0.3, "text_marker": "[TEXT]", "speech_marker": "[SPEECH]",
                "mixture": {"text": 0.20, "interleaved": 0.54, "speech": 0.25}, "context_length": 2048},
}


@dataclass
class Vocab:
    """Shared id space: ``[0, text_size)`` text, then specials, then ``num_units`` unit ids."""

    text_size: int
    num_units: int
    text_marker: str = "[TEXT]"
    speech_marker: str = "[SPEECH]"
    eos: str = "[EOS]"
    pad: str = "[PAD]"
    specials: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        names = [self.text_marker, self.speech_marker, self.eos, self.pad]
        self.specials = {n: self.text_size + i for i, n in enumerate(names)}
        self.unit_offset = self.text_size + len(names)
        self.size = self.unit_offset + self.num_units

    @property
    def text_id(self) -> int:
        return self.specials[self.text_marker]

    @property
    def speech_id(self) -> int:
        return self.specials[self.speech_marker]

    @property
    def eos_id(self) -> int:
        return self.specials[self.eos]

    @property
    def pad_id(self) -> int:
        return self.specials[self.pad]

    def info(self) -> dict[str, Any]:
        return {"text_vocab_size": self.text_size, "num_units": self.num_units, "unit_offset": self.unit_offset,
                "vocab_size": self.size, "special_tokens": dict(self.specials),
                "markers": {"text": self.text_marker, "speech": self.speech_marker}, "eos": self.eos, "pad": self.pad}


def row_seed(seed: int, row_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{int(seed)}|{row_id}".encode()).digest()[:8], "little")


def resolve_params(preset: str | None = "default", **overrides: Any) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"unknown interleave preset {preset!r}; known: {sorted(PRESETS)}")
    p = dict(PRESETS[preset])
    p.update({k: v for k, v in overrides.items() if v is not None})
    mix = {k: float(v) for k, v in dict(p["mixture"]).items() if float(v) > 0}
    bad = set(mix) - set(FORMATS)
    if bad or not mix:
        raise ValueError(f"mixture {p['mixture']!r}: formats must be among {FORMATS} with a positive weight")
    total = sum(mix.values())
    # canonical order: the per-row draw must not depend on how the mapping was written or serialised
    p["mixture"] = {k: mix[k] / total for k in FORMATS if k in mix}
    return p


def speech_mask(n: int, rng: np.random.Generator, mode: str, p: float = 0.5, lam: float = 10.0, eta: float = 0.3,
                min_span: int = 1, max_span: int = 10) -> np.ndarray:
    """Per-word modality (True = speech) for ``n`` words."""
    if n == 0:
        return np.zeros(0, bool)
    if mode == "random":
        return rng.random(n) < p
    if mode == "span":
        mask, i, speech = np.zeros(n, bool), 0, bool(rng.random() < 0.5)
        while i < n:
            k = int(rng.integers(min_span, max_span + 1))
            mask[i:i + k] = speech
            i, speech = i + k, not speech
        return mask
    if mode == "poisson":
        mask, target = np.zeros(n, bool), math.ceil(eta * n)
        for _ in range(100 * n):  # bounded: each try either adds speech words or is skipped
            if mask.sum() >= target:
                break
            k = max(1, int(rng.poisson(lam)))
            k = min(k, target - int(mask.sum()))
            s = int(rng.integers(0, n - k + 1))
            if not mask[max(0, s - 1): s + k + 1].any():  # non-overlapping, separated by text
                mask[s:s + k] = True
        return mask
    raise ValueError(f"unknown interleave mode {mode!r}; use random, span or poisson")


def runs(mask: np.ndarray) -> list[tuple[bool, int, int]]:
    """Maximal runs of equal modality: (is_speech, first word, end word)."""
    out, i = [], 0
    while i < len(mask):
        j = i
        while j < len(mask) and mask[j] == mask[i]:
            j += 1
        out.append((bool(mask[i]), i, j))
        i = j
    return out


def build_sequence(fmt: str, words: Sequence[str], units: Sequence[int], spans: Sequence[tuple[int, int]] | None,
                   tok: Any, vocab: Vocab, rng: np.random.Generator, params: dict[str, Any]):
    """Token ids and the plan ``[(modality, first word, end word)]`` (plan is for tests and inspection)."""
    u = [vocab.unit_offset + int(x) for x in units]
    text = " ".join(words)
    if fmt == "speech":
        return [vocab.speech_id] + u, [("speech", 0, len(words))]
    if fmt == "text":
        return [vocab.text_id] + tok.encode(text), [("text", 0, len(words))]
    if fmt == "speech_text":
        return [vocab.speech_id] + u + [vocab.text_id] + tok.encode(text), [("speech", 0, len(words)), ("text", 0, len(words))]
    if fmt == "text_speech":
        return [vocab.text_id] + tok.encode(text) + [vocab.speech_id] + u, [("text", 0, len(words)), ("speech", 0, len(words))]
    assert spans is not None
    mask = speech_mask(len(words), rng, params["mode"], p=params.get("p", 0.5), lam=params.get("lam", 10.0),
                       eta=params.get("eta", 0.3), min_span=params.get("min_span", 1), max_span=params.get("max_span", 10))
    for speech, a, b in runs(mask):  # a speech run with no units (words shorter than a unit) is kept as text
        if speech and spans[a][0] == spans[b - 1][1]:
            mask[a:b] = False
    tokens: list[int] = []
    plan = []
    for speech, a, b in runs(mask):
        if speech:
            tokens += [vocab.speech_id] + u[spans[a][0]: spans[b - 1][1]]
        else:
            tokens += [vocab.text_id] + tok.encode(" ".join(words[a:b]))
        plan.append(("speech" if speech else "text", a, b))
    return tokens, plan


def decode_sequence(tokens: Sequence[int], vocab: Vocab, tok: Any) -> list[tuple[str, Any]]:
    """Tokens -> [("text", str) | ("speech", [unit ids]) | ("eos", None)] in order."""
    out: list[tuple[str, Any]] = []
    cur: str | None = None
    buf: list[int] = []

    def flush() -> None:
        if cur == "text":
            out.append(("text", tok.decode(buf)))
        elif cur == "speech":
            out.append(("speech", [t - vocab.unit_offset for t in buf]))

    for t in tokens:
        t = int(t)
        if t in (vocab.text_id, vocab.speech_id, vocab.eos_id, vocab.pad_id):
            flush()
            buf = []
            cur = "text" if t == vocab.text_id else "speech" if t == vocab.speech_id else None
            if t == vocab.eos_id:
                out.append(("eos", None))
            continue
        buf.append(t)
    flush()
    return out


def make_vocab(text_tokenizer: str | None, num_units: int, preset: str | None = "default",
               trained_tokenizer: str | None = None, **overrides: Any):
    """Text tokenizer, shared vocabulary and resolved params. ``text_tokenizer`` (a local tokenizer) wins over
    ``trained_tokenizer`` (where the recipe's ``train_text_tokenizer`` hook writes one)."""
    from .texttok import TextTokenizer

    p = resolve_params(preset or "default", **overrides)
    path = text_tokenizer or trained_tokenizer
    if not path:
        raise ValueError("interleave: give text_tokenizer=<local tokenizer dir> or run the train_text_tokenizer hook")
    tok = TextTokenizer(path)
    return tok, Vocab(tok.vocab_size, int(num_units), p["text_marker"], p["speech_marker"]), p


class InterleaveStage(Stage):
    """Adds ``format``/``tokens`` (int32 ids in the shared vocabulary) and the other formats' sequences to unit rows."""

    name = "interleave"

    def __init__(self, text_tokenizer: str | None = None, num_units: int = 500, seed: int = 0, preset: str = "default",
                 mixture: dict[str, float] | None = None, mode: str | None = None, p: float | None = None,
                 lam: float | None = None, eta: float | None = None, min_span: int | None = None,
                 max_span: int | None = None, text_marker: str | None = None, speech_marker: str | None = None,
                 trained_tokenizer: str | None = None):
        self.tok, self.vocab, self.params = make_vocab(
            text_tokenizer, num_units, preset, trained_tokenizer, mixture=mixture, mode=mode, p=p, lam=lam, eta=eta, min_span=min_span,
            max_span=max_span, text_marker=text_marker, speech_marker=speech_marker)
        self.seed = int(seed)
        self.formats = list(self.params["mixture"])

    def candidates(self, row: Row, units: list[int], rng: np.random.Generator) -> dict[str, list[int]] | str:
        """The row's sequence in every mixture format it can take, or why it can take none."""
        where = row.get("audio_path") or row.get("id")
        words_rec = row.get("words") or []
        words = [w["word"] for w in words_rec] or normalized_words(row.get("text"))
        spans, why = None, ""
        if "interleaved" in self.formats:
            if not words_rec:
                why = f"{where}: interleaving needs word times; run `align` first"
            else:
                try:
                    spans = word_unit_spans(words_rec, len(units), float(row.get("unit_rate_hz") or 0),
                                            row.get("unit_durations"))
                except ValueError as e:  # inconsistent units/times: the row is wrong, not just one format
                    return f"{where}: {e}; check the tokenize stage's output"
        out = {}
        for fmt in self.formats:
            if fmt != "speech" and not words:
                why = why or (f"{where}: format {fmt!r} needs a transcript; add `asr`/`align` stages or use a "
                              f"speech-only mixture")
            elif fmt != "interleaved" or spans is not None:
                out[fmt] = build_sequence(fmt, words, units, spans, self.tok, self.vocab, rng, self.params)[0]
        return out or why

    def process(self, rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            where = row.get("audio_path") or row.get("id")
            units = row.get("units")
            if units is None or len(units) == 0:
                out.append(reject(row, self.name, f"{where}: no `units`; run the `tokenize` stage before `interleave`"))
                continue
            units = [int(x) for x in units]
            if max(units) >= self.vocab.num_units or min(units) < 0:
                out.append(reject(row, self.name, f"{where}: unit id {max(units)} outside [0, {self.vocab.num_units}); "
                                  f"set interleave `num_units` to the unit tokenizer's vocabulary size"))
                continue
            rng = np.random.default_rng(row_seed(self.seed, str(row["id"])))
            cands = self.candidates(row, units, rng)
            if isinstance(cands, str):
                out.append(reject(row, self.name, cands))
                continue
            # per-token weights: P(format) ~ share / length, so each format's EXPECTED token share is its
            # configured share whatever the lengths (a per-row draw would give short text far fewer tokens)
            names = list(cands)
            w = np.array([self.params["mixture"][f] / max(1, len(cands[f])) for f in names])
            fmt = names[int(rng.choice(len(names), p=w / w.sum()))]
            row["format"] = fmt
            row["tokens"] = np.asarray(cands.pop(fmt), dtype=np.int32)
            row["alt_formats"] = list(cands)  # the packer may pick one of these to hit the token shares exactly
            row["alt_tokens"] = [[int(t) for t in seq] for seq in cands.values()]
            out.append(row)
        return out
