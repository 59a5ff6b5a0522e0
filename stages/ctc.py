"""CTC forced alignment on an emission matrix: the best monotonic path of a known token sequence.

Why two implementations behind one function: ``torchaudio.functional.forced_align`` (C++) works in the
installed torchaudio but is deprecated and scheduled for removal, so :func:`ctc_viterbi` (vectorised over
the 2L+1 CTC states with torch, one step per frame) is the maintained path and is chosen automatically when
torchaudio's is missing or fails. Both return the same path (tests check it on random emissions).

Star token: a word whose characters the model's vocabulary cannot spell is aligned as a wildcard ``*``
token whose emission is, per frame, the best non-blank log-probability (like MMS-FA's ``<star>``), so the
other words keep sensible times instead of the whole row failing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger("slmfactory.stages.ctc")
NEG_INF = -1.0e30


def ctc_viterbi(log_probs: "torch.Tensor | np.ndarray", targets: Sequence[int], blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi CTC alignment. ``log_probs``: (T, C) log-softmax; returns (labels per frame, log-prob per frame).

    States: blank, t1, blank, t2, ..., tL, blank. A state may stay, advance by one, or skip the blank
    between two different labels; ties prefer stay, then advance (as torchaudio does). One vectorised numpy
    step per frame (numpy's per-call overhead is far below torch's on these small vectors); float32 like
    torchaudio so both pick the same path. Backpointers are int8 offsets (T x S bytes).
    Raises ValueError when the transcript cannot fit in T frames.
    """
    lp = log_probs.detach().cpu().numpy() if isinstance(log_probs, torch.Tensor) else np.asarray(log_probs)
    lp = lp.astype(np.float32, copy=False)
    T = lp.shape[0]
    tgt = np.asarray(list(targets), dtype=np.int64)
    L = int(tgt.size)
    repeats = int((tgt[1:] == tgt[:-1]).sum()) if L > 1 else 0
    if L == 0 or T < L + repeats:
        raise ValueError(f"cannot align {L} tokens ({repeats} repeats) in {T} frames")
    S = 2 * L + 1
    labels = np.full(S, blank, dtype=np.int64)
    labels[1::2] = tgt
    no_skip = np.ones(S, dtype=bool)
    if L > 1:
        no_skip[3::2] = tgt[1:] == tgt[:-1]
    no_skip[:2] = True
    emit = np.ascontiguousarray(lp[:, labels])  # (T, S)
    neg = np.float32(NEG_INF)
    score = np.full(S, neg, dtype=np.float32)
    score[0], score[1] = emit[0, 0], emit[0, 1]
    back = np.zeros((T, S), dtype=np.int8)
    adv = np.full(S, neg, dtype=np.float32)
    skip = np.full(S, neg, dtype=np.float32)
    for t in range(1, T):
        adv[1:] = score[:-1]
        skip[2:] = score[:-2]
        skip[no_skip] = neg
        best = score.copy()
        arg = back[t]
        m = adv > best
        best[m] = adv[m]
        arg[m] = 1
        m = skip > best
        best[m] = skip[m]
        arg[m] = 2
        score = best + emit[t]
    s = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2
    if score[s] <= NEG_INF / 2:
        raise ValueError(f"no CTC path for {L} tokens in {T} frames")
    states = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    return labels[states], emit[np.arange(T), states]


def forced_align(log_probs: torch.Tensor, targets: Sequence[int], blank: int = 0,
                 impl: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Labels and log-probs per frame. ``impl``: auto (torchaudio when it works, else ours), torchaudio, viterbi."""
    if impl in ("auto", "torchaudio"):
        try:
            import warnings

            import torchaudio.functional as taf

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lab, scores = taf.forced_align(log_probs.detach().float().cpu().unsqueeze(0),
                                               torch.as_tensor([list(targets)], dtype=torch.int32), blank=blank)
            return lab[0].numpy().astype(np.int64), scores[0].numpy()
        except (ImportError, AttributeError, RuntimeError) as e:
            if impl == "torchaudio":
                raise
            log.debug("torchaudio forced_align unavailable (%s); using ctc_viterbi", e)
    return ctc_viterbi(log_probs, targets, blank)


@dataclass
class TokenSpan:
    token: int
    start: int  # frame, inclusive
    end: int  # frame, exclusive
    score: float  # mean per-frame probability


def merge_tokens(path: np.ndarray, frame_lp: np.ndarray, blank: int = 0) -> list[TokenSpan]:
    """Runs of the same non-blank label -> one span per target token (repeats are split by a blank)."""
    spans, t, T = [], 0, len(path)
    while t < T:
        if path[t] == blank:
            t += 1
            continue
        u = t
        while u < T and path[u] == path[t]:
            u += 1
        spans.append(TokenSpan(int(path[t]), t, u, float(np.exp(frame_lp[t:u]).mean())))
        t = u
    return spans


def add_star_column(log_probs: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """Append a wildcard column: best non-blank log-prob per frame (index = C)."""
    lp = log_probs.clone()
    lp[:, blank] = NEG_INF
    star = lp.max(dim=-1, keepdim=True).values
    return torch.cat([log_probs, star], dim=-1)
