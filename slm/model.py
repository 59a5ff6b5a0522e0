"""Losses and sizes for the speech LM, which is a plain Hugging Face causal LM (``LlamaForCausalLM`` when cold).

Why no model class of our own: one HF class serves TWIST init, cold init, ``from_pretrained``, ``generate``
and every downstream tool. Packed blocks hold several documents; HF builds a block-diagonal causal mask
from ``position_ids`` resets when no ``attention_mask`` is given (``masking_utils.find_packed_sequence_indices``),
which is what slamkit's packing with position resets expects - ``tests/test_slm.py`` checks it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_nll_sum(model, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token NLL (float32) over targets ``labels != -100``; ``labels[:, t]`` is the target at ``t``."""
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor | None = None,
            reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy from logits; ``loss_mask`` (1 = train) applies to the predicted token."""
    pred, tgt = logits[:, :-1].float(), input_ids[:, 1:]
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), tgt.reshape(-1), reduction="none").view(tgt.shape)
    w = torch.ones_like(nll) if loss_mask is None else loss_mask[:, 1:].to(nll.dtype)
    if reduction == "none":
        return nll * w
    return (nll * w).sum() / w.sum().clamp(min=1)


def count_params(model) -> int:
    """Parameters counted once (tied input/output embeddings are one matrix): the N of 6*N*tokens FLOPs."""
    seen, n = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            n += p.numel()
    return n
