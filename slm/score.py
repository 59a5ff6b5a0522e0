"""Likelihood scoring of benchmark pairs: mean NLL per sequence, batched, for a Hugging Face speech LM.

The sWUGGY / sBLIMP / spoken StoryCloze protocol: a pair is won when its positive member has the lower
mean token NLL; a tie counts 0.5. A member's sequence is built exactly like the ``speech`` format of
the training data (``stages.interleave.build_sequence``: the speech marker, then unit ids past
``unit_offset``), so the model sees what it was trained on. Options:

* ``marker`` (default on): keep the speech marker as context (a document starts with it in training);
  off, the first unit is context instead. Either way the marker is never scored.
* ``eos``: also score the ``[EOS]`` that ends every training document (how well the model knows it ended).
* ``restrict``: modality-restricted softmax: normalise over unit ids + ``[EOS]`` only, so probability mass
  the model puts on text tokens does not count against a speech continuation.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..stages.interleave import Vocab, build_sequence

INFO_FILE = "speech_lm.json"


@dataclass
class ScoreConfig:
    marker: bool = True
    eos: bool = False
    restrict: bool = False
    batch_tokens: int = 4096  # padded tokens per forward pass (the logits are batch x length x vocabulary)
    device: str = "cpu"


@dataclass
class Pair:
    pair_id: str
    kind: str
    paradigm: str
    positive: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)


def vocab_from_info(info: dict[str, Any]) -> Vocab:
    """The shared vocabulary as ``dataset_info.json``/``speech_lm.json`` wrote it, checked field by field."""
    m = info.get("markers") or {}
    v = Vocab(int(info["text_vocab_size"]), int(info["num_units"]), m.get("text", "[TEXT]"),
              m.get("speech", "[SPEECH]"), info.get("eos", "[EOS]"), info.get("pad", "[PAD]"))
    want = {k: int(x) for k, x in (info.get("special_tokens") or {}).items()}
    if (want and want != v.specials) or int(info.get("unit_offset", v.unit_offset)) != v.unit_offset:
        raise ValueError(f"vocabulary fields disagree (special_tokens {want} vs {v.specials}, unit_offset "
                         f"{info.get('unit_offset')} vs {v.unit_offset}); the model's {INFO_FILE} is not from this "
                         f"packing layout")
    return v


def load_model(folder: str | Path, device: str = "cpu"):
    """``(model, speech_lm.json dict)`` of a speech LM folder (``AutoModelForCausalLM`` + ``speech_lm.json``)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / INFO_FILE).exists():
        raise FileNotFoundError(f"{folder}: no {INFO_FILE}; give the model folder `slmfactory slm train` wrote "
                                f"(a Hugging Face folder with {INFO_FILE} beside config.json)")
    info = json.loads((folder / INFO_FILE).read_text())
    model = AutoModelForCausalLM.from_pretrained(str(folder)).to(device).eval()
    return model, info


def speech_sequence(units: Sequence[int], vocab: Vocab, eos: bool = False) -> list[int]:
    """``[SPEECH] u1+offset ... un+offset`` (+ ``[EOS]``): the training data's ``speech`` format."""
    seq, _ = build_sequence("speech", [], [int(u) for u in units], None, None, vocab, None, {})
    return list(seq) + ([vocab.eos_id] if eos else [])


def trim(seq: list[int], cfg: ScoreConfig) -> list[int]:
    """Tokens ``seq[1:]`` are scored: the marker is context, or without it the first unit is."""
    return seq if cfg.marker else seq[1:]


def allowed_ids(vocab: Vocab) -> list[int]:
    return list(range(vocab.unit_offset, vocab.unit_offset + vocab.num_units)) + [vocab.eos_id]


def mean_nll(model, seqs: Sequence[Sequence[int]], cfg: ScoreConfig, vocab: Vocab | None = None) -> list[float]:
    """Mean NLL of tokens ``seq[1:]`` given their prefix, per sequence; length-sorted batches under a token
    budget (right padding with an attention mask, so padding never changes a score)."""
    import torch

    out = [float("nan")] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    allowed = torch.tensor(allowed_ids(vocab), device=cfg.device) if cfg.restrict and vocab else None
    remap, head = None, None
    if allowed is not None:
        remap = torch.full((int(allowed.max()) + 1,), -1, dtype=torch.long, device=cfg.device)
        remap[allowed] = torch.arange(len(allowed), device=cfg.device)
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and len(seqs[order[j]]) * (j + 1 - i) <= cfg.batch_tokens:
            j += 1
        idx = order[i:j]
        i = j
        t = max(len(seqs[k]) for k in idx)
        if t < 2:
            continue
        ids = torch.zeros(len(idx), t, dtype=torch.long, device=cfg.device)
        mask = torch.zeros_like(ids)
        for r, k in enumerate(idx):
            ids[r, :len(seqs[k])] = torch.tensor(list(seqs[k]), dtype=torch.long)
            mask[r, :len(seqs[k])] = 1
        with torch.inference_mode():
            if allowed is not None:
                if head is None:
                    head = restricted_head(model, ids, mask, allowed)
                logits = head(ids, mask)[:, :-1].float()
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        tgt = ids[:, 1:]
        if allowed is not None:
            tgt = remap[tgt.clamp(max=len(remap) - 1)]
            bad = (tgt < 0) & (mask[:, 1:] > 0)
            if bad.any():
                raise ValueError("restricted softmax: a scored token is not a unit or [EOS]; score speech sequences only")
            tgt = tgt.clamp(min=0)
        nll = -torch.log_softmax(logits, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        m = mask[:, 1:].float()
        per = (nll * m).sum(1) / m.sum(1).clamp(min=1)
        for r, k in enumerate(idx):
            out[k] = float(per[r]) if len(seqs[k]) >= 2 else float("nan")
    return out


def restricted_head(model, ids, mask, allowed):
    """A forward that computes only the ``allowed`` logits: the decoder's hidden states times those rows of
    the output matrix. Why: a 49k-row head over every position is most of a small speech LM's scoring cost
    on CPU, and the restricted softmax needs ~100 of those rows. Checked once against the full forward on a
    real batch (a model whose head is more than a linear map, e.g. soft-capped logits, keeps the full path)."""
    import torch

    out_emb, base = model.get_output_embeddings(), getattr(model, "base_model", None)
    full = lambda i, m: model(input_ids=i, attention_mask=m).logits.index_select(-1, allowed)  # noqa: E731
    if out_emb is None or base is None or base is model:
        return full
    w = out_emb.weight.index_select(0, allowed)
    b = out_emb.bias.index_select(0, allowed) if getattr(out_emb, "bias", None) is not None else None

    def fast(i, m):
        return torch.nn.functional.linear(base(input_ids=i, attention_mask=m).last_hidden_state, w, b)

    i, m = ids[:1, :32], mask[:1, :32]  # a small real slice: the check must not cost a batch
    ref, got = full(i, m).float(), fast(i, m).float()
    ok = m.bool()
    return fast if torch.allclose(got[ok], ref[ok], rtol=1e-3, atol=1e-3 * max(1.0, float(ref[ok].abs().max()))) else full


def accuracy(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Share of pairs whose positive has the lower mean NLL; ties 0.5 (NaN pairs count as ties)."""
    if not len(pos):
        return float("nan")
    score = sum(1.0 if a < b else 0.0 if a > b else 0.5 for a, b in zip(pos, neg))
    return score / len(pos)


def read_bench(folder: str | Path) -> tuple[list[Pair], dict[str, Any]]:
    """Pairs of unit sequences from a spoken_bench run (``OUT/manifest``), and what it found incomplete."""
    import pyarrow.parquet as pq

    root = Path(folder)
    files = sorted(glob.glob(str(root / "manifest" / "*.parquet"))) or sorted(glob.glob(str(root / "*.parquet")))
    if not files:
        raise FileNotFoundError(f"{folder}: no manifest shards; run `slmfactory run spoken_bench ... out={folder}` first")
    members: dict[str, dict[str, Any]] = {}
    tokenizers, voices_differ = set(), []
    for f in files:
        cols = set(pq.ParquetFile(f).schema_arrow.names)
        need = {"pair_id", "kind", "role", "units"}
        if not need <= cols:
            raise ValueError(f"{f}: missing columns {sorted(need - cols)}; is this a spoken_bench output?")
        want = [c for c in ("pair_id", "kind", "paradigm", "role", "units", "voice", "tokenizer") if c in cols]
        for r in pq.read_table(f, columns=want).to_pylist():
            if r.get("units") is None:
                continue
            m = members.setdefault(r["pair_id"], {"kind": r["kind"], "paradigm": r.get("paradigm") or ""})
            m[r["role"]] = r["units"]
            m.setdefault("voices", set()).add(r.get("voice"))
            tokenizers.add(r.get("tokenizer"))
    pairs, incomplete = [], []
    for pid in sorted(members):
        m = members[pid]
        if "positive" not in m or "negative" not in m:
            incomplete.append(pid)
            continue
        if len(m["voices"]) > 1:
            voices_differ.append(pid)
        pairs.append(Pair(pid, m["kind"], m["paradigm"], list(m["positive"]), list(m["negative"])))
    return pairs, {"incomplete_pairs": incomplete, "voice_mismatch": voices_differ,
                   "tokenizers": sorted(t for t in tokenizers if t)}


def check_units(pairs: Sequence[Pair], vocab: Vocab) -> None:
    for p in pairs:
        for units in (p.positive, p.negative):
            if units and (max(units) >= vocab.num_units or min(units) < 0):
                raise ValueError(f"pair {p.pair_id}: unit {max(units)} outside [0, {vocab.num_units}); the benchmark "
                                 f"was tokenized with another k-means than the model's training data")
