"""Unigram and bigram baselines fitted on the training data's packed tokens, scored like the model.

Why: a pair accuracy means little alone. A unit bigram model already prefers frequent unit transitions,
and spoken pairs leak such cues (a non-word's rarer phone, a longer word); printing the n-gram
accuracies on the *same* token sequences beside the model says how much of the model's score is more than
counting. Counts stream over the packed shards (row groups), never crossing a document start
(``position_ids`` reset), and use only real tokens (``loss_mask`` 1). Add-k smoothing over the scored
vocabulary: all ids, or only the allowed ones when the model's softmax is modality-restricted.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq


class NgramBaseline:
    """Unigram + bigram counts over a vocabulary of ``vocab_size`` ids (bigrams kept sparse)."""

    def __init__(self, vocab_size: int, unigram: np.ndarray, bigram_keys: np.ndarray, bigram_counts: np.ndarray,
                 k: float = 1.0, allowed: Sequence[int] | None = None):
        self.V, self.k = int(vocab_size), float(k)
        self.uni = unigram.astype(np.float64)
        self.keys, self.counts = bigram_keys, bigram_counts.astype(np.float64)
        self.restrict(allowed)

    def restrict(self, allowed: Sequence[int] | None) -> "NgramBaseline":
        """Normalise over ``allowed`` ids only (None: the whole vocabulary), like a restricted softmax."""
        prev, cur = self.keys // self.V, self.keys % self.V
        if allowed is None:
            self.size, keep = self.V, np.ones(len(self.keys), bool)
            self.uni_total = self.uni.sum()
        else:
            ids = np.asarray(sorted(set(int(a) for a in allowed)), np.int64)
            self.size, keep = len(ids), np.isin(cur, ids)
            self.uni_total = self.uni[ids].sum()
        self.prev_total = np.bincount(prev[keep], weights=self.counts[keep], minlength=self.V)
        return self

    def unigram_nll(self, seq: Sequence[int], first: int = 1) -> float:
        """Mean -log p(token) over ``seq[first:]`` (the tokens the model predicts)."""
        t = np.asarray(seq[first:], np.int64)
        if t.size == 0:
            return float("nan")
        return float(-np.mean(np.log((self.uni[t] + self.k) / (self.uni_total + self.k * self.size))))

    def bigram_nll(self, seq: Sequence[int], first: int = 1) -> float:
        """Mean -log p(token | previous token) over ``seq[first:]`` (``first`` >= 1)."""
        s = np.asarray(seq, np.int64)
        prev, cur = s[max(first, 1) - 1:-1], s[max(first, 1):]
        if cur.size == 0:
            return float("nan")
        keys = prev * self.V + cur
        c = np.zeros(len(keys))
        if len(self.keys):
            i = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            c = np.where(self.keys[i] == keys, self.counts[i], 0.0)
        return float(-np.mean(np.log((c + self.k) / (self.prev_total[prev] + self.k * self.size))))

    @property
    def tokens(self) -> int:
        return int(self.uni.sum())


def packed_files(folder: str | Path) -> list[str]:
    files = sorted(glob.glob(str(Path(folder) / "*.parquet")))
    if not files:
        raise FileNotFoundError(f"{folder}: no packed shards (*.parquet); give the training run's OUT/packed "
                                f"(the interleaved recipe writes it)")
    return files


def fit(folder: str | Path, k: float = 1.0, vocab_size: int | None = None, batch_rows: int = 256) -> NgramBaseline:
    """Count unigrams and within-document bigrams of the packed shards in ``folder``, one row group at a time."""
    files = packed_files(folder)
    if vocab_size is None:
        info = Path(folder) / "dataset_info.json"
        if not info.exists():
            raise FileNotFoundError(f"{info}: missing; give vocab_size or the packed folder with its dataset_info.json")
        vocab_size = int(json.loads(info.read_text())["vocab_size"])
    V = int(vocab_size)
    uni = np.zeros(V, np.int64)
    parts_k, parts_c = [], []
    last = -1  # last real token of the stream so far (a document may continue into the next block)
    for f in files:
        for rb in pq.ParquetFile(f).iter_batches(columns=["input_ids", "loss_mask", "position_ids"],
                                                 batch_size=batch_rows):
            ids = pc.list_flatten(rb.column(0)).to_numpy().astype(np.int64)
            mask = pc.list_flatten(rb.column(1)).to_numpy().astype(bool)
            pos = pc.list_flatten(rb.column(2)).to_numpy()
            ids, pos = ids[mask], pos[mask]
            if ids.size == 0:
                continue
            if ids.max() >= V or ids.min() < 0:
                raise ValueError(f"{f}: token id {int(ids.max())} outside the vocabulary of {V}; the packed data "
                                 f"and dataset_info.json disagree")
            uni += np.bincount(ids, minlength=V)
            prev = np.concatenate([[last], ids[:-1]])
            ok = (pos != 0) & (prev >= 0)
            keys, counts = np.unique(prev[ok] * V + ids[ok], return_counts=True)
            parts_k.append(keys)
            parts_c.append(counts)
            last = int(ids[-1])
    keys = np.concatenate(parts_k) if parts_k else np.zeros(0, np.int64)
    counts = np.concatenate(parts_c) if parts_c else np.zeros(0, np.int64)
    ukeys, inv = np.unique(keys, return_inverse=True)
    return NgramBaseline(V, uni, ukeys, np.bincount(inv, weights=counts, minlength=len(ukeys)), k=k)
