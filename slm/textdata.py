"""An optional text-only corpus mixed into training at a fixed share of tokens (slamkit trains on text of its own).

Why: a text-initialised speech LM forgets text when it only sees transcripts; slamkit keeps a text stream
beside the speech data. The file (plain text, one document per line, or JSONL with a ``text`` field) is
tokenized with the *same* text tokenizer the packed set used (``dataset_info.json`` ``text_tokenizer``),
each document framed as ``[TEXT] ids [EOS]``, packed into blocks of the packed set's context length with
position resets, and streamed line by line (never held whole). The share is honoured per token: after
step ``s`` exactly ``floor(share * s * G)`` of the ``s * G`` blocks seen were text blocks, so resume and
N workers see the same mixture.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def text_blocks_before(step: int, share: float, global_batch: int) -> int:
    """Text blocks among the first ``step * global_batch`` blocks."""
    return int(math.floor(share * step * global_batch + 1e-9))


class TextBlocks:
    """Blocks ``(ids, mask, pos)`` packed from a text file, cycling over it forever."""

    def __init__(self, path: str | Path, info: dict[str, Any], normalize: bool = True):
        from ..stages.texttok import TextTokenizer

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{path}: text corpus not found (plain text, one document per line, or JSONL "
                                    f"with a 'text' field)")
        tt = info.get("text_tokenizer") or {}
        if not tt.get("path") or not Path(tt["path"]).exists():
            raise FileNotFoundError(f"dataset_info.json text_tokenizer {tt.get('path')!r} is not on this machine; the "
                                    f"text corpus must be tokenized with the packed set's own tokenizer")
        self.tok = TextTokenizer(tt["path"])
        self.normalize = normalize
        self.context_length = int(info["context_length"])
        specials = info["special_tokens"]
        self.text_id = int(specials[info["markers"]["text"]])
        self.eos_id = int(specials[info["eos"]])
        self.pad_id = int(specials[info["pad"]])

    def _documents(self) -> Iterator[list[int]]:
        from ..stages.textnorm import normalize_text

        jsonl = self.path.suffix in (".jsonl", ".json")
        while True:
            any_doc = False
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    if jsonl:
                        obj = json.loads(line)
                        if "text" not in obj:
                            raise ValueError(f"{self.path}:{n}: JSONL lines need a 'text' field")
                        line = str(obj["text"])
                    text = normalize_text(line) if self.normalize else line
                    ids = self.tok.encode(text) if text else []
                    if ids:
                        any_doc = True
                        yield [self.text_id] + ids + [self.eos_id]
            if not any_doc:
                raise ValueError(f"{self.path}: no text to train on")

    def stream(self, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Blocks from block ``start`` on (the ones before are packed and skipped, never kept)."""
        t = self.context_length
        ids = np.empty(t, np.int64)
        pos = np.empty(t, np.int64)
        fill, made = 0, 0
        for doc in self._documents():
            positions = range(len(doc))
            i = 0
            while i < len(doc):
                k = min(t - fill, len(doc) - i)
                ids[fill:fill + k] = doc[i:i + k]
                pos[fill:fill + k] = positions[i:i + k]
                fill, i = fill + k, i + k
                if fill == t:
                    if made >= start:
                        yield ids.copy(), np.ones(t, np.int64), pos.copy()
                    made, fill = made + 1, 0
