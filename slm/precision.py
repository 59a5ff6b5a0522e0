"""Training precision: fp32, or bf16 autocast (master weights and optimizer stay fp32) - on GPUs and CPUs.

Why measure on CPUs: bf16 pays off only where the CPU has bf16 matrix instructions (AVX512-BF16, AMX);
elsewhere autocast's casts make it slower. ``auto`` on a CPU times a 1024x1024 matmul both ways (~0.1 s) and
takes bf16 when it is at least 1.3x faster; ``bench/bench_train.py`` shows what that means for training
(docs/slm.md). On CUDA, ``auto`` is bf16 when the GPU supports it. A run stores its resolved precision,
so a resume never flips it.
"""
from __future__ import annotations

import contextlib
import time

import torch


def bf16_matmul_speedup(n: int = 1024, repeats: int = 3) -> float:
    """fp32 time / bf16 time of an n x n matmul on the CPU (median of ``repeats``)."""
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        a @ b
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            runs.append(time.perf_counter() - t)
        times[dt] = sorted(runs)[len(runs) // 2]
    return times[torch.float32] / max(times[torch.bfloat16], 1e-12)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision {precision!r}: use auto, bf16 or fp32")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if bf16_matmul_speedup() >= 1.3 else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
