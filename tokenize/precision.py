"""``precision: auto``: use bf16 where the hardware runs it natively, but only if it keeps the units.

Why a capability check plus a calibration instead of a timing or a fixed rule: a timing would make the choice
(and therefore the units) depend on machine load; a fixed rule cannot know whether a given checkpoint and layer
keep their units in bf16. So ``auto`` proposes bf16 when the CPU has AVX512-BF16/AMX-BF16 (or the GPU supports
bf16; fp16 on older GPUs), encodes a FIXED generated speech-like batch at fp32 and at the proposed precision,
and keeps the proposal only when at least ``MIN_AGREEMENT`` of the units (or codec codes) agree. The batch is
generated (not the first rows a worker happens to get) so every worker of every run takes the same decision
for the same model on the same machine kind: the same input gives the same units run after run. The decision
is logged once per tokenizer and recorded in its label (the ``tokenizer`` column), e.g. ``+bf16(auto,agree=0.9990)``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

SR = 16_000
MIN_AGREEMENT = 0.99
CALIBRATION_SECONDS = (1.0, 1.5, 2.0)  # three lengths, so a batched encoder also sees padding
log = logging.getLogger("slmfactory.tokenize")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_supported() -> bool:
    """AVX512-BF16 or AMX-BF16 on this CPU (from /proc/cpuinfo, else torch's detected capability)."""
    if cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return True
    import torch

    return any(k in torch.backends.cpu.get_cpu_capability() for k in ("AMX", "BF16"))


def auto_candidate(device: str) -> str:
    """What ``auto`` proposes on ``device`` before calibration: bf16 (or fp16 on a GPU without bf16), else fp32."""
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_supported() else "fp32"


def calibration_batch(seed: int = 0) -> list[np.ndarray]:
    """A fixed, speech-like 16 kHz batch: harmonic voicing with a moving pitch, syllable-rate envelopes and
    noise bursts (fricatives), so the encoder works on a realistic spectrum. Seeded: always the same samples."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in CALIBRATION_SECONDS:
        n = int(seconds * SR)
        t = np.arange(n) / SR
        f0 = 120 + 30 * np.sin(2 * np.pi * 0.6 * t + rng.uniform(0, 2 * np.pi))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voiced = sum(np.sin(h * phase) * np.exp(-h / 8) for h in range(1, 40))
        env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 5) * t))
        x = env * voiced + (1 - env) * rng.normal(0, 0.4, n)
        out.append((0.1 * x / np.abs(x).max()).astype(np.float32))
    return out


def agreement(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Share of equal units (codes: equal entries) between two encodings of the same inputs; a length
    mismatch counts as full disagreement for that item."""
    same = total = 0
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        total += x.size
        same += int((x == y).sum()) if x.shape == y.shape else 0
    return same / total if total else 1.0


@dataclass
class PrecisionDecision:
    """What ``auto`` chose: ``used`` precision, the ``candidate`` it tried, and the measured unit ``agreement``."""

    requested: str
    candidate: str
    used: str
    agreement: float | None = None

    def tag(self) -> str:
        """Suffix for the tokenizer label: empty for plain fp32 (the units of every earlier version)."""
        if self.requested == "auto" and self.agreement is not None:
            return f"+{self.used}(auto,agree={self.agreement:.4f})"
        return "" if self.used == "fp32" else f"+{self.used}"


def decide(requested: str | None, candidate: str, set_precision: Callable[[str], None],
           encode: Callable[[list[np.ndarray]], list[np.ndarray]], label: str,
           batch: list[np.ndarray] | None = None) -> PrecisionDecision:
    """Resolve ``requested`` (``auto``/None, or an explicit precision, which is kept as given).

    For ``auto`` with a reduced-precision ``candidate``: ``encode`` the calibration batch after
    ``set_precision("fp32")`` and after ``set_precision(candidate)``, and leave the model at the chosen one.
    """
    requested = requested or "auto"
    if requested != "auto" or candidate == "fp32":
        set_precision(candidate)
        return PrecisionDecision(requested, candidate, candidate)
    batch = batch if batch is not None else calibration_batch()
    set_precision("fp32")
    ref = encode(batch)
    set_precision(candidate)
    agree = agreement(ref, encode(batch))
    used = candidate if agree >= MIN_AGREEMENT else "fp32"
    set_precision(used)
    if used == "fp32":
        log.warning("%s: precision auto -> fp32 (%s agreed on only %.2f%% of calibration units, < %.0f%%)",
                    label, candidate, 100 * agree, 100 * MIN_AGREEMENT)
    else:
        log.info("%s: precision auto -> %s (%.2f%% of calibration units agree with fp32)", label, used, 100 * agree)
    return PrecisionDecision("auto", candidate, used, agree)
