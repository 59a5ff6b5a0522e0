"""silero-vad probabilities and frame energies, computed window by window with the whole-file result.

Why: silero-vad is a small recurrent model; fed one 32 ms chunk per call it is bound by call overhead, so we
step many *streams* of the audio together as one batch (~10x faster). Each stream covers ``stream_chunks``
chunks at a fixed position of the file and starts ``warmup`` chunks early (those probabilities are thrown
away), so its recurrent state has settled when its own audio begins. The layout depends only on a chunk's
position in the file, never on the file's length, and ``max_streams`` consecutive streams always form one
batch: a window of ``max_streams * stream_chunks`` chunks (262 s by default) plus the ``warmup`` chunks
before it is all any probability depends on. :class:`WindowedScan` therefore needs only that much audio in
memory, and gives exactly (same batches, same numbers) what :func:`scan_whole` gives on the whole waveform.

Frame energies (mean square of 20 ms frames on a grid from the file's start) are what the segmenter cuts
over-long speech at; they are accumulated the same way, so cutting needs no audio either.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..manifests.schema import TARGET_SAMPLE_RATE

SR = TARGET_SAMPLE_RATE
CHUNK = 512  # silero-vad's window at 16 kHz (32 ms)
FRAME = 320  # energy frame (20 ms)


def frame_energy(wav: np.ndarray) -> np.ndarray:
    """Mean square of each complete 20 ms frame (float64: per frame, independent of where a window cuts)."""
    n = len(wav) // FRAME
    x = np.asarray(wav[: n * FRAME], dtype=np.float64).reshape(n, FRAME)
    return np.einsum("ij,ij->i", x, x) / FRAME


def group_probs(model: Callable[[Any, int], Any], context: np.ndarray, body: np.ndarray, stream_chunks: int,
                warmup: int) -> np.ndarray:
    """Probabilities of ``body``'s chunks (zero-padded to whole chunks), ``context`` = the audio before it.

    ``context`` holds at most ``warmup`` whole chunks (fewer only at the file's start). ``body`` holds at most
    ``max_streams * stream_chunks`` chunks; stream ``j`` covers body chunks ``[j*L, (j+1)*L)``.
    """
    import torch

    off = len(context) // CHUNK
    n_body = -(-len(body) // CHUNK)
    x = np.zeros((off + n_body) * CHUNK, dtype=np.float32)
    x[: len(context)] = context
    x[len(context): len(context) + len(body)] = body
    chunks = torch.from_numpy(x).reshape(off + n_body, CHUNK)
    rows = []
    for j in range(-(-n_body // stream_chunks)):
        s = off + j * stream_chunks
        rows.append((max(0, s - warmup), s, min(off + n_body, s + stream_chunks)))
    steps = max(hi - lo for lo, _, hi in rows)
    batch = torch.zeros(len(rows), steps, CHUNK)
    for b, (lo, _, hi) in enumerate(rows):
        batch[b, : hi - lo] = chunks[lo:hi]
    out = torch.empty(len(rows), steps)
    model.reset_states()
    with torch.inference_mode():
        for j in range(steps):
            out[:, j] = model(batch[:, j, :], SR).reshape(-1)
    model.reset_states()
    return np.concatenate([out[b, s - lo: hi - lo].numpy() for b, (lo, s, hi) in enumerate(rows)])


class WindowedScan:
    """Feed consecutive 16 kHz windows of one file; :meth:`finish` returns (probs, energies, samples).

    Holds at most one batch window (``max_streams * stream_chunks`` chunks) plus ``warmup`` chunks of audio.
    ``model=None`` skips the VAD (known speech spans) and only accumulates energies.
    """

    def __init__(self, model: Any, stream_chunks: int = 64, max_streams: int = 128, warmup: int = 16):
        self.model, self.L, self.warmup = model, int(stream_chunks), int(warmup)
        self.window = int(max_streams) * self.L * CHUNK  # samples per batch window
        self.context = np.zeros(0, np.float32)
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.probs: list[np.ndarray] = []
        self.energy: list[np.ndarray] = []
        self.frame_rest = np.zeros(0, np.float32)
        self.samples = 0

    def feed(self, wav: np.ndarray) -> None:
        wav = np.asarray(wav, dtype=np.float32)
        self.samples += len(wav)
        x = np.concatenate([self.frame_rest, wav]) if len(self.frame_rest) else wav
        n = len(x) // FRAME
        self.energy.append(frame_energy(x[: n * FRAME]))
        self.frame_rest = x[n * FRAME:].copy()
        if self.model is None:
            return
        self.pending.append(wav)
        self.pending_len += len(wav)
        if self.pending_len >= self.window:
            buf = np.concatenate(self.pending)
            k = 0
            while len(buf) - k >= self.window:
                self._run(buf[k: k + self.window])
                k += self.window
            rest = buf[k:].copy()
            self.pending, self.pending_len = ([rest] if len(rest) else []), len(rest)

    def _run(self, body: np.ndarray) -> None:
        self.probs.append(group_probs(self.model, self.context, body, self.L, self.warmup))
        keep = self.warmup * CHUNK  # body is whole chunks here (the window is a multiple of CHUNK)
        self.context = np.concatenate([self.context, body])[-keep:].copy() if keep else np.zeros(0, np.float32)

    def finish(self) -> tuple[np.ndarray | None, np.ndarray, int]:
        if self.model is not None and self.pending_len:
            self._run(np.concatenate(self.pending))
        self.pending, self.pending_len = [], 0
        energy = np.concatenate(self.energy) if self.energy else np.zeros(0)
        probs = None if self.model is None else (np.concatenate(self.probs) if self.probs else np.zeros(0, np.float32))
        return probs, energy, self.samples


def scan_whole(model: Any, wav: np.ndarray, stream_chunks: int = 64, max_streams: int = 128,
               warmup: int = 16) -> tuple[np.ndarray | None, np.ndarray, int]:
    """The whole-waveform reference: the same batches as :class:`WindowedScan` fed any window sizes."""
    scan = WindowedScan(model, stream_chunks, max_streams, warmup)
    scan.feed(wav)
    return scan.finish()
