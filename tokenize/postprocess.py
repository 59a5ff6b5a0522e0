"""Unit post-processing: run-length dedup with durations, a vocabulary offset, sentencepiece BPE over units.

Why: speech LMs (GSLM, TWIST, Slam) train on deduplicated units and keep the run lengths (textlesslib
``deduplicate=``) so alignment and resynthesis can map units back to time; SpiRit-LM appends unit ids after a
text vocabulary (``offset``); unit BPE (acoustic BPE) shortens sequences further. BPE runs on unit *strings*:
each unit id becomes one private-use Unicode character, so sentencepiece sees a plain character stream and
no whitespace/normalisation quirks can merge or drop units.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PUA = 0xE000  # first private-use code point; 6400 code points up to U+F8FF cover k <= 6400


def dedup(units: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs: [5,5,5,7,7,5] -> ([5,7,5], [3,2,1]). sum(durations) == len(units)."""
    u = np.asarray(units, dtype=np.int32)
    if u.size == 0:
        return u, np.zeros(0, np.int32)
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
    durs = np.diff(np.concatenate([starts, [u.size]])).astype(np.int32)
    return u[starts], durs


def expand(units: Sequence[int], durations: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`dedup`."""
    return np.repeat(np.asarray(units, np.int32), np.asarray(durations, np.int64))


def offset(units: Sequence[int] | np.ndarray, by: int) -> np.ndarray:
    """Shift unit ids past a text vocabulary: unit i -> token ``by + i`` (``<unit_i>``)."""
    return np.asarray(units, dtype=np.int32) + np.int32(by)


def unit_token_names(k: int, template: str = "<unit_{}>") -> list[str]:
    """Token strings to append to a text tokenizer, in id order (``<unit_0>`` ... ``<unit_{k-1}>``)."""
    return [template.format(i) for i in range(k)]


def to_string(units: Sequence[int]) -> str:
    return "".join(chr(PUA + int(u)) for u in units)


def from_string(s: str) -> list[int]:
    return [ord(c) - PUA for c in s]


def train_bpe(unit_seqs: Iterable[Sequence[int]], prefix: str | os.PathLike, vocab_size: int, k: int,
              max_sentence_length: int = 1 << 20) -> Path:
    """Train a sentencepiece BPE model over unit strings; writes ``PREFIX.model`` (protobuf, not a pickle).

    Every unit id is a required character, so any unit sequence is encodable without <unk>.
    """
    import sentencepiece as spm

    if k > 6400:
        raise ValueError(f"k={k}: unit BPE maps units to private-use characters and supports k <= 6400")
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    lines = [to_string(u) for u in unit_seqs if len(u)]
    if not lines:
        raise ValueError("no unit sequences to train BPE on")
    lines.append(to_string(range(k)))  # every unit is a character of the vocabulary, seen or not
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(prefix), model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0,
        split_by_whitespace=False, split_by_unicode_script=False, split_by_number=False,
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        max_sentence_length=max_sentence_length, bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return prefix.with_suffix(".model")


class UnitBPE:
    """Apply a trained unit BPE: units -> BPE token ids, and back."""

    def __init__(self, model_path: str | os.PathLike):
        import sentencepiece as spm

        if not Path(model_path).exists():
            raise FileNotFoundError(f"{model_path}: unit BPE model not found; train one with `slmfactory bpe train`")
        self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, units: Sequence[int]) -> list[int]:
        ids = list(self.sp.encode(to_string(units)))
        if self.sp.unk_id() in ids:
            raise ValueError(f"unit ids {sorted(set(int(u) for u in units))[-3:]}... are outside the BPE model's "
                             f"unit range; train the BPE with -k covering every unit id")
        return ids

    def decode(self, ids: Sequence[int]) -> list[int]:
        return from_string(self.sp.decode(list(ids)))
