"""Text tokenizer for interleaved sequences: a local Hugging Face ``tokenizer.json`` or a sentencepiece
model trained on the corpus text by a ``prepare`` hook.

Why both: a speech-text LM initialised from a text LM must reuse that LM's tokenizer (give its local
directory); a model trained from scratch can use a small sentencepiece model fitted on the transcripts.
Nothing is downloaded: paths only.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from .textnorm import normalize_text

log = logging.getLogger("slmfactory.stages.texttok")

SPM_FILE = "spm.model"


class TextTokenizer:
    """``encode(text) -> ids``, ``decode(ids) -> text``, ``vocab_size``; loaded from a local path."""

    def __init__(self, path: str | os.PathLike):
        p = Path(path)
        if p.is_dir():
            if (p / "tokenizer.json").exists():
                p = p / "tokenizer.json"
            elif (p / SPM_FILE).exists():
                p = p / SPM_FILE
            else:
                models = sorted(p.glob("*.model"))
                if not models:
                    raise FileNotFoundError(f"{path}: no tokenizer.json or sentencepiece *.model inside; give the "
                                            f"directory of a Hugging Face tokenizer or add a `train_text_tokenizer` prepare hook")
                p = models[0]
        if not p.exists():
            raise FileNotFoundError(f"{path}: text tokenizer not found; train one with the `train_text_tokenizer` "
                                    f"prepare hook or point `text_tokenizer` at a local tokenizer.json")
        self.path = str(p)
        if p.suffix == ".json":
            from tokenizers import Tokenizer

            self.kind = "hf"
            self._tok = Tokenizer.from_file(str(p))
            self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))
        else:
            import sentencepiece as spm

            self.kind = "sentencepiece"
            self._tok = spm.SentencePieceProcessor(model_file=str(p))
            self.vocab_size = int(self._tok.get_piece_size())
        self.name = f"{self.kind}:{p.parent.name}/{p.name}"

    def encode(self, text: str) -> list[int]:
        if self.kind == "hf":
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        return list(self._tok.encode(text, out_type=int))

    def decode(self, ids: list[int]) -> str:
        if self.kind == "hf":
            return self._tok.decode(list(ids), skip_special_tokens=False).strip()
        return self._tok.decode(list(ids)).strip()


def train_sentencepiece(texts: Iterable[str], out_dir: str | os.PathLike, vocab_size: int = 1000,
                        model_type: str = "unigram") -> Path:
    """Fit a sentencepiece model on normalized ``texts``; deterministic (one thread, no sampling).

    ``hard_vocab_limit=False`` lets a small corpus get a smaller vocabulary instead of failing, and
    ``required_chars`` guarantees every letter the normalizer can emit has a piece (round-trip decoding).
    """
    import sentencepiece as spm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [normalize_text(t) for t in texts if t]
    lines = [t for t in lines if t]
    if not lines:
        # a corpus without transcripts (LibriLight, podcasts): ASR fills text only later, so fall back on a
        # character-level model that can still spell every normalized word; a real LM tokenizer is better
        log.warning("no text in the input to train a sentencepiece model for %s; using a character-level model. "
                    "Give `text_tokenizer` a local tokenizer.json for a real vocabulary", out)
        lines, model_type = [" ".join("abcdefghijklmnopqrstuvwxyz'")], "char"
    # sentences from memory, not a temporary file: the trainer records its input path in the model, which made
    # two identical runs write different spm.model bytes
    # written under a temporary prefix and renamed: a kill or a full disk never leaves a truncated spm.model
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(out / ".spm-tmp"), vocab_size=int(vocab_size),
        model_type=model_type, character_coverage=1.0, hard_vocab_limit=False, normalization_rule_name="identity",
        required_chars="abcdefghijklmnopqrstuvwxyz'", num_threads=1, shuffle_input_sentence=False,
        input_sentence_size=0, bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2)
    (out / ".text_tokenizer.json.tmp").write_text(json.dumps({"kind": "sentencepiece", "model_type": model_type,
                                                              "vocab_size": vocab_size, "lines": len(lines)}, indent=1))
    for ext in ("vocab", "model"):  # the model last: its presence means the rest is there
        os.replace(out / f".spm-tmp.{ext}", out / f"spm.{ext}")
    os.replace(out / ".text_tokenizer.json.tmp", out / "text_tokenizer.json")
    return out / SPM_FILE


def _texts_from(items: Iterable[Any], column: str) -> Iterable[str]:
    """Rows (dicts), batches (dict of lists) or Arrow tables/batches -> the ``column`` strings."""
    for it in items:
        if hasattr(it, "column_names") and hasattr(it, "to_pydict"):
            it = it.to_pydict()
        if isinstance(it, dict) and isinstance(it.get(column), list):
            yield from (t for t in it[column] if isinstance(t, str))
        elif isinstance(it, dict):
            t = it.get(column)
            if isinstance(t, str):
                yield t


def train_text_tokenizer(ctx: Any, path: str | None = None, vocab_size: int = 1000, column: str = "text",
                         model_type: str = "unigram", use: str | None = None) -> str:
    """``prepare`` hook: train a sentencepiece model on the input's text unless ``path`` already holds one
    (resume-safe) or ``use`` names a tokenizer the user supplies. Returns the directory."""
    if use:
        TextTokenizer(use)  # fail early, before any stage runs, when the given tokenizer is missing
        return str(use)
    out = Path(path) if path else Path(ctx.out_dir) / "text_tokenizer"
    if (out / "tokenizer.json").exists():
        return str(out)
    if (out / SPM_FILE).exists():
        try:
            TextTokenizer(out)
            return str(out)
        except Exception as e:  # noqa: BLE001 - a 0-byte or corrupt model (sentencepiece raises plain errors)
            log.warning("%s is unusable (%s); training it again", out / SPM_FILE, e)
    train_sentencepiece(_texts_from(ctx.iter_input(), column), out, vocab_size, model_type)
    return str(out)
