"""Training data that streams: packed Parquet read one row group at a time, a held-out split, labels.

Why streaming: the packed set can be far larger than RAM. Only Parquet *metadata* is read up front (row
counts per row group); blocks are read one row group at a time (``ParquetFile.read_row_group``) and
shuffled within it, the row groups themselves in a seeded order per epoch. Memory is one row group
(``pack_shards`` writes <= 512 blocks per shard) plus 8 bytes per block of bookkeeping, whatever the corpus size.

Determinism: the stream is a pure function of (seed, position), so step ``s`` of a run always sees the
same blocks - on 1 worker or on N (each rank takes its slice of the same global batch) and after resume
(the position is ``s * global_batch``; nothing before it is read).

Held-out split: the ``val_fraction`` blocks with the smallest seeded hash of their global index
(stable, spread over the whole corpus, never trained on). Targets: a token is a target unless it is
padding (``loss_mask`` 0) or the first token of a document (``position_ids`` == 0): the EOS of one
document is never trained to predict the start of the next one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq

COLUMNS = ["input_ids", "loss_mask", "position_ids"]
IGNORE = -100


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of ``x`` (uint64): a stable, seedable hash for the held-out split."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def read_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "dataset_info.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; give the OUT/packed folder the interleaved recipe writes "
                                f"(`slmfactory run interleaved ... out=OUT`)")
    info = json.loads(path.read_text())
    for key in ("vocab_size", "context_length"):
        if key not in info:
            raise ValueError(f"{path}: no {key!r}; re-run the interleaved recipe's pack_shards hook")
    return info


@dataclass
class Batch:
    input_ids: np.ndarray  # (B, T) int64
    position_ids: np.ndarray
    labels: np.ndarray  # next-token targets aligned with input_ids positions, IGNORE where not trained

    @property
    def targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def make_labels(ids: np.ndarray, mask: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``labels[:, t]`` = ``ids[:, t+1]`` where that token is trained on; padding and document starts excluded."""
    labels = np.full_like(ids, IGNORE)
    ok = (mask[:, 1:] > 0) & (pos[:, 1:] != 0)
    labels[:, :-1] = np.where(ok, ids[:, 1:], IGNORE)
    return labels


def to_batch(ids: np.ndarray, mask: np.ndarray, pos: np.ndarray) -> Batch:
    ids, mask, pos = (np.asarray(a, dtype=np.int64) for a in (ids, mask, pos))
    return Batch(ids, pos, make_labels(ids, mask, pos))


class PackedBlocks:
    """Index of the blocks in ``folder/*.parquet`` (metadata only) and seeded streams over them."""

    def __init__(self, folder: str | Path, val_fraction: float = 0.02, seed: int = 0):
        self.folder = Path(folder)
        self.info = read_info(folder)
        self.files = sorted(self.folder.glob("*.parquet"))
        if not self.files:
            raise FileNotFoundError(f"{folder}: no packed *.parquet shards; run the interleaved recipe first")
        self.groups: list[tuple[int, int, int, int]] = []  # (file index, row group, first global block, rows)
        first = 0
        for fi, f in enumerate(self.files):
            md = pq.ParquetFile(f).metadata
            for g in range(md.num_row_groups):
                n = md.row_group(g).num_rows
                self.groups.append((fi, g, first, n))
                first += n
        self.num_blocks = first
        self.context_length = int(self.info["context_length"])
        self.seed = int(seed)
        n_val = int(round(val_fraction * first)) if val_fraction > 0 else 0
        if val_fraction > 0 and first >= 2:
            n_val = min(max(1, n_val), first - 1)
        is_val = np.zeros(first, dtype=bool)
        if n_val:
            is_val[np.argsort(_mix(np.arange(first), 1_000_003 + self.seed), kind="stable")[:n_val]] = True
        self.is_val = is_val
        self.train_per_group = np.array([int((~is_val[a:a + n]).sum()) for _, _, a, n in self.groups])
        self.num_train = int(self.train_per_group.sum())
        if self.num_train == 0:
            raise ValueError(f"{folder}: no training blocks left after the held-out split; lower val_fraction")

    def _read(self, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fi, g, _, n = self.groups[group]
        t = pq.ParquetFile(self.files[fi]).read_row_group(g, columns=COLUMNS)
        out = []
        for c in COLUMNS:
            col = t.column(c).combine_chunks()
            flat = col.values.to_numpy(zero_copy_only=False)
            if len(flat) != n * self.context_length:
                raise ValueError(f"{self.files[fi]}: column {c} is not {n} blocks of {self.context_length} tokens; "
                                 f"re-pack with one context_length")
            out.append(flat.reshape(n, self.context_length))
        return out[0], out[1], out[2]

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.groups))

    def stream(self, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Training blocks ``(ids, mask, pos)`` from stream position ``start`` on, epoch after epoch."""
        epoch, skip = divmod(int(start), self.num_train)
        while True:
            for group in self._epoch_order(epoch):
                n_train = int(self.train_per_group[group])
                if skip >= n_train:
                    skip -= n_train
                    continue
                _, _, first, n = self.groups[group]
                rows = np.flatnonzero(~self.is_val[first:first + n])
                rows = rows[np.random.default_rng([self.seed, epoch, 1 + int(group)]).permutation(len(rows))]
                ids, mask, pos = self._read(group)
                for r in rows[skip:]:
                    yield ids[r], mask[r], pos[r]
                skip = 0
            epoch += 1

    def validation(self, max_blocks: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Held-out blocks in corpus order (at most ``max_blocks``)."""
        done = 0
        for group, (_, _, first, n) in enumerate(self.groups):
            rows = np.flatnonzero(self.is_val[first:first + n])
            if not len(rows):
                continue
            ids, mask, pos = self._read(group)
            for r in rows:
                if max_blocks is not None and done >= max_blocks:
                    return
                yield ids[r], mask[r], pos[r]
                done += 1


def validation_batches(data: PackedBlocks, batch_size: int, max_blocks: int | None) -> Iterator[Batch]:
    buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for block in data.validation(max_blocks):
        buf.append(block)
        if len(buf) == batch_size:
            yield to_batch(*(np.stack(c) for c in zip(*buf)))
            buf = []
    if buf:
        yield to_batch(*(np.stack(c) for c in zip(*buf)))
