"""Synthetic packed shards in the interleaved recipe's format, for tests and benchmarks of the trainer.

Why: trainer tests and the memory benchmark need packed sets of a chosen size (a few blocks, or 20M tokens)
in seconds, with something learnable inside. Documents are "sentences" of "words", each word a fixed run of
unit ids (a grammar a model can learn: after the first unit of a word the rest is determined), framed like
the recipe's speech format (``[SPEECH] units [EOS]``), packed with position resets and padding exactly as
``stages/pack.pack_tokens`` does, and described by a ``dataset_info.json`` with the shared-vocabulary fields.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TEXT_VOCAB = 8  # stand-in text ids [0, 8); specials follow, then units
SPECIALS = ["[TEXT]", "[SPEECH]", "[EOS]", "[PAD]"]


def vocab_info(num_units: int, context_length: int, text_vocab: int = TEXT_VOCAB,
               text_tokenizer: str | None = None) -> dict[str, Any]:
    """The ``Vocab.info()`` fields; ``text_tokenizer``: the tokenizer.json whose ids [0, text_vocab) are."""
    specials = {n: text_vocab + i for i, n in enumerate(SPECIALS)}
    return {"text_vocab_size": text_vocab, "num_units": num_units, "unit_offset": text_vocab + len(SPECIALS),
            "vocab_size": text_vocab + len(SPECIALS) + num_units, "special_tokens": specials,
            "markers": {"text": "[TEXT]", "speech": "[SPEECH]"}, "eos": "[EOS]", "pad": "[PAD]",
            "context_length": context_length, "unit_tokenizer": ["synthetic"],
            "text_tokenizer": {"kind": "hf" if text_tokenizer else None, "path": text_tokenizer, "vocab_size": text_vocab}}


def words(num_units: int, n_words: int = 12, seed: int = 0, text_vocab: int = TEXT_VOCAB) -> list[np.ndarray]:
    """Words = runs of 2-5 unit ids (model ids) with distinct first units."""
    rng = np.random.default_rng(seed)
    off = text_vocab + len(SPECIALS)
    n_words = min(n_words, num_units)
    firsts = rng.permutation(num_units)[:n_words]
    return [np.array([off + f] + list(off + rng.integers(0, num_units, rng.integers(1, 5))), np.int32) for f in firsts]


def token_stream(num_tokens: int, num_units: int = 32, seed: int = 0,
                 text_vocab: int = TEXT_VOCAB) -> tuple[np.ndarray, np.ndarray]:
    """(ids, positions) of concatenated documents, at least ``num_tokens`` long."""
    rng = np.random.default_rng(seed + 1)
    vocab = words(num_units, seed=seed, text_vocab=text_vocab)
    speech, eos = text_vocab + 1, text_vocab + 2
    pieces: list[np.ndarray] = []
    n = 0
    while n < num_tokens:
        choice = rng.integers(0, len(vocab), 4096)
        lengths = rng.integers(2, 7, 4096)
        i = 0
        while i < len(choice) and n < num_tokens:
            k = int(lengths[i % len(lengths)])
            doc = np.concatenate([[speech], *(vocab[c] for c in choice[i:i + k]), [eos]]).astype(np.int32)
            pieces.append(doc)
            n += len(doc)
            i += k
    ids = np.concatenate(pieces)
    pos = np.concatenate([np.arange(len(p), dtype=np.int32) for p in pieces])
    return ids, pos


def write_packed(folder: str | Path, num_tokens: int, context_length: int = 64, num_units: int = 32,
                 blocks_per_shard: int = 512, seed: int = 0, text_vocab: int = TEXT_VOCAB,
                 text_tokenizer: str | None = None) -> Path:
    """``folder/shard-*.parquet`` + ``dataset_info.json``; the last block padded as ``pack_shards`` does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = vocab_info(num_units, context_length, text_vocab, text_tokenizer)
    ids, pos = token_stream(num_tokens, num_units, seed, text_vocab)
    n_blocks = -(-len(ids) // context_length)
    pad = n_blocks * context_length - len(ids)
    mask = np.concatenate([np.ones(len(ids), np.int8), np.zeros(pad, np.int8)])
    ids = np.concatenate([ids, np.full(pad, info["special_tokens"]["[PAD]"], np.int32)])
    pos = np.concatenate([pos, np.zeros(pad, np.int32)])
    for s, b0 in enumerate(range(0, n_blocks, blocks_per_shard)):
        b1 = min(n_blocks, b0 + blocks_per_shard)
        sl = slice(b0 * context_length, b1 * context_length)
        offsets = pa.array(np.arange(0, (b1 - b0 + 1) * context_length, context_length, dtype=np.int32))
        cols = {"input_ids": pa.ListArray.from_arrays(offsets, pa.array(ids[sl])),
                "loss_mask": pa.ListArray.from_arrays(offsets, pa.array(mask[sl])),
                "position_ids": pa.ListArray.from_arrays(offsets, pa.array(pos[sl])),
                "num_documents": pa.array(np.zeros(b1 - b0, np.int32))}
        pq.write_table(pa.table(cols), folder / f"shard-{s:05d}.parquet")
    info.update({"num_blocks": n_blocks, "tokens": {"total": int(len(ids) - pad), "padding": int(pad)}})
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return folder
