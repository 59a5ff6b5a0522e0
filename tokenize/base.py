"""The speech tokenizer base class (the TOKENIZERS registry family), device/precision choice, length bucketing.

Why one base class: the stage, the k-means trainer, the CLI and the benchmark only need frame features (for
k-means) or ``encode(list of 16 kHz waveforms) -> list of int arrays``, plus a little metadata, whether units
come from spectral features + k-means, HuBERT + k-means or a neural codec. Each backend is a subclass with a
``name`` that recipes use (``tokenizer: hubert``); ``manifests.registry.TOKENIZERS`` finds the subclasses by
reading source, so adding a backend is one module plus one test. Device and precision are chosen here once,
after a capability check, so every backend makes the same (visible) choice.
"""
from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

SR = 16_000
PRECISIONS = ("fp32", "bf16", "fp16")


class SpeechTokenizer:
    """Base of every speech tokenizer backend; a subclass with a ``name = "..."`` is a registered member.

    Two kinds of member, told apart by ``needs_kmeans``:

    * ``True``: ``features(wavs) -> list of (T, D) float32`` frame features (``dim`` = D); k-means centroids
      turn them into units (``quantized.KMeansTokenizer``), and the same backend feeds k-means training.
    * ``False``: ``encode(wavs) -> list of int32 arrays``, (T,) for one codebook or (Q, T) for Q (codecs), with
      ``vocab_size`` and ``num_codebooks``.

    ``label`` (e.g. ``hubert_base-L6-ab12cd34``) says which weights and settings made the units: it goes into
    the ``tokenizer`` column and the k-means JSON, so it must stay the same for the same inputs. (The class
    attribute ``name`` is the short registry name; ``label`` belongs to a built instance.)
    """

    name: ClassVar[str]  # the registry name recipes and the CLI use: spectral, hubert, ...
    needs_kmeans: ClassVar[bool] = True
    label: str
    frame_rate_hz: float

    @classmethod
    def from_params(cls, **params: Any) -> SpeechTokenizer:
        """Build from recipe/CLI parameters: keep those the constructor takes; ``None`` means its default.

        Why lenient: one parameter set (the tokenize stage's, the k-means hook's) serves every backend, so a
        parameter another backend uses (``layer`` for spectral features) is ignored rather than an error.
        Backends with extra rules (a checkpoint that must be given) override this and call it.
        """
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in params.items() if k in accepted and v is not None})

    def features(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} gives units directly (needs_kmeans=False): use encode()")

    def encode(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} gives frame features: quantize them with k-means")


def file_hash(path: str | os.PathLike, limit: int | None = None) -> str:
    """sha1 of a checkpoint file (or of every file in a checkpoint directory), to record units' provenance."""
    h = hashlib.sha1()
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[: limit or 40]


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an explicit choice is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is visible; use device=cpu or auto")
    return device


def pick_precision(precision: str | None, device: str) -> str:
    """An explicit precision, checked; ``auto``/None -> what ``precision.auto_candidate`` proposes for the device
    (bf16 on CPUs with AVX512-BF16/AMX and bf16 GPUs, fp16 on older GPUs, else fp32). The proposal is only
    kept after the unit-agreement calibration (``precision.decide``), which the unit-producing tokenizer runs."""
    from .precision import auto_candidate

    if precision not in (None, "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)} or auto")
        if precision == "fp16" and device == "cpu":
            raise ValueError("precision=fp16 is not supported on CPU (no fast kernels); use bf16 or fp32")
        return precision
    return auto_candidate(device)


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def set_cpu_threads(num_threads: int | None) -> int:
    """Use every core this process may run on (Ray sets OMP_NUM_THREADS from num_cpus; respect it)."""
    import torch

    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS")
        num_threads = int(env) if env and env.isdigit() else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, num_threads))
    return torch.get_num_threads()


@dataclass(frozen=True)
class Bucket:
    indices: list[int]  # positions in the caller's list, sorted by length
    max_len: int  # padded length in samples

    @property
    def padded(self) -> int:
        return self.max_len * len(self.indices)


def buckets(lengths: Sequence[int], batch_seconds: float, sr: int = SR, max_items: int = 64) -> Iterator[Bucket]:
    """Group items sorted by length into batches whose *padded* size stays under ``batch_seconds``.

    Sorting first keeps padding small; budgeting padded seconds (not item count) keeps GPU memory flat
    whatever the length mix. ``batch_seconds <= 0`` means one item per batch (the fastest choice on CPU).
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    budget = int(batch_seconds * sr)
    cur: list[int] = []
    for i in order:
        new_max = max([lengths[j] for j in cur] + [lengths[i]])
        if cur and (budget <= 0 or new_max * (len(cur) + 1) > budget or len(cur) >= max_items):
            yield Bucket(cur, max(lengths[j] for j in cur))
            cur = []
        cur.append(i)
    if cur:
        yield Bucket(cur, max(lengths[j] for j in cur))


def chunk_spans(n: int, max_samples: int, hop: int) -> list[tuple[int, int]]:
    """Split ``n`` samples into chunks of at most ``max_samples`` (a multiple of ``hop``, so frame grids line
    up) — textlesslib encodes long files in chunks of at most 100 s to bound memory."""
    step = max(hop, (max_samples // hop) * hop)
    return [(s, min(n, s + step)) for s in range(0, n, step)] or [(0, n)]
