"""Inference and evaluation for the bundled speech LM.

* ``generate``: temperature / top-k sampling (defaults of RECIPES.md: temperature 0.8, top-k 25,
  150 new tokens), seeded so a prompt and seed always give the same continuation.
* ``pair_accuracy``: the likelihood benchmarks of the field (sWUGGY, sBLIMP, spoken StoryCloze): for
  each (positive, negative) pair, the positive wins when its mean token NLL is lower; ties count 0.5.
  Pairs are token-id sequences - tokenize the benchmark audio with the same units recipe first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import torch

from .model import SpeechLM, lm_loss


@torch.inference_mode()
def generate(model: SpeechLM, prompt: Sequence[int], max_new_tokens: int = 150, temperature: float = 0.8,
             top_k: int | None = 25, seed: int = 0, eos_id: int | None = None) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    ctx = model.cfg.context_length
    for _ in range(max_new_tokens):
        logits = model(ids[:, -ctx:])[0, -1].float().cpu()
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
        if eos_id is not None and nxt == eos_id:
            break
    return ids[0, len(prompt):].tolist()


@torch.inference_mode()
def mean_nll(model: SpeechLM, seqs: Sequence[Sequence[int]], batch_size: int = 16) -> list[float]:
    """Mean next-token NLL of each sequence (padding excluded)."""
    device = next(model.parameters()).device
    out: list[float] = []
    for i in range(0, len(seqs), batch_size):
        chunk = [list(s)[: model.cfg.context_length] for s in seqs[i:i + batch_size]]
        t = max(len(s) for s in chunk)
        ids = torch.zeros(len(chunk), t, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for j, s in enumerate(chunk):
            ids[j, :len(s)] = torch.tensor(s)
            mask[j, :len(s)] = 1
        nll = lm_loss(model(ids), ids, mask, reduction="none")
        denom = mask[:, 1:].sum(1).clamp(min=1)
        out += (nll.sum(1) / denom).tolist()
    return out


def pair_accuracy(model: SpeechLM, pairs: Iterable[tuple[Sequence[int], Sequence[int]]]) -> float:
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no pairs to evaluate")
    pos = mean_nll(model, [p for p, _ in pairs])
    neg = mean_nll(model, [n for _, n in pairs])
    score = sum(1.0 if a < b else 0.5 if a == b else 0.0 for a, b in zip(pos, neg))
    return score / len(pairs)


def load_pairs(path: str | Path) -> list[tuple[list[int], list[int]]]:
    """JSONL lines ``{"positive": [ids], "negative": [ids]}``."""
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            obj = json.loads(line)
            if "positive" not in obj or "negative" not in obj:
                raise ValueError(f"{path}:{n}: each line needs 'positive' and 'negative' token lists")
            pairs.append((obj["positive"], obj["negative"]))
    return pairs
