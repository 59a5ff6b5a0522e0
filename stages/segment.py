"""Voice-activity segmentation of long audio into training-sized segments.

Why: speech LMs and tokenizers want utterance-sized inputs (slamkit warns against encoding whole
files); podcasts and LibriLight come as hour-long files. silero-vad (its model ships inside the
package, no download) finds speech; we then merge speech spans separated by short gaps into segments
of ``min_seconds``..``max_seconds`` and split over-long speech at its quietest point.

Rows that already have a transcript are kept whole (a transcript cannot be split without an
alignment); known spans (LibriLight's ``voice_activity``) replace the VAD run.
"""
from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from ..manifests.schema import AUDIO_COLUMN, TARGET_SAMPLE_RATE, id_key, segment_id
from .base import Row, Stage, reject

SR = TARGET_SAMPLE_RATE


def merge_spans(spans: list[tuple[float, float]], min_seconds: float, max_seconds: float,
                max_gap: float) -> list[tuple[float, float]]:
    """Greedily join consecutive speech spans while the gap is small and the result fits ``max_seconds``."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s - out[-1][1] <= max_gap and e - out[-1][0] <= max_seconds:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    # a too-short segment joins a neighbour when that keeps it under max_seconds
    merged: list[list[float]] = []
    for seg in out:
        if merged and (seg[1] - seg[0] < min_seconds or merged[-1][1] - merged[-1][0] < min_seconds) \
                and seg[1] - merged[-1][0] <= max_seconds:
            merged[-1][1] = seg[1]
        else:
            merged.append(seg)
    return [(float(s), float(e)) for s, e in merged]


def split_long(wav: np.ndarray, start: float, end: float, max_seconds: float, min_seconds: float,
               frame: float = 0.02) -> list[tuple[float, float]]:
    """Split ``[start, end)`` recursively at the lowest-energy frame until every piece fits."""
    if end - start <= max_seconds:
        return [(start, end)]
    lo, hi = start + min_seconds, end - min_seconds  # both halves keep at least min_seconds
    a, b = int(lo * SR), int(hi * SR)
    hop = max(1, int(frame * SR))
    region = wav[a:b]
    n = len(region) // hop
    if n < 1:
        mid = (start + end) / 2
    else:
        energy = (region[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
        # prefer cuts near the middle among equally quiet frames: small tie-breaking penalty
        centre = np.abs(np.arange(n) - n / 2) / max(n, 1)
        mid = lo + (int(np.argmin(energy + 1e-9 * centre)) + 0.5) * hop / SR
    return split_long(wav, start, mid, max_seconds, min_seconds, frame) + \
        split_long(wav, mid, end, max_seconds, min_seconds, frame)


class VadSegmentStage(Stage):
    """One file row in, one row per speech segment out (or the file row rejected: no speech)."""

    name = "vad_segment"

    def __init__(self, min_seconds: float = 1.0, max_seconds: float = 20.0, max_gap: float = 0.5,
                 threshold: float = 0.5, min_silence_ms: int = 300, speech_pad_ms: int = 60,
                 mode: str = "auto", num_threads: int | None = None, max_streams: int = 64,
                 min_stream_chunks: int = 64, warmup_chunks: int = 16):
        if not 0 < min_seconds < max_seconds:
            raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds}, {max_seconds}")
        if mode not in ("auto", "always", "never"):
            raise ValueError(f"mode must be auto|always|never, got {mode!r}")
        self.min_seconds, self.max_seconds, self.max_gap = float(min_seconds), float(max_seconds), float(max_gap)
        self.threshold, self.min_silence_ms, self.speech_pad_ms = threshold, int(min_silence_ms), int(speech_pad_ms)
        self.mode = mode
        self.max_streams, self.min_stream_chunks, self.warmup_chunks = max_streams, min_stream_chunks, warmup_chunks
        self._model = None
        self._num_threads = num_threads

    @property
    def model(self):
        """silero-vad's bundled JIT model, loaded once per worker on first use."""
        if self._model is None:
            import torch
            from silero_vad import load_silero_vad

            if self._num_threads:
                torch.set_num_threads(int(self._num_threads))
            with warnings.catch_warnings():  # torch.jit.load deprecation inside silero-vad
                warnings.simplefilter("ignore", FutureWarning)
                self._model = load_silero_vad()
        return self._model

    def speech_probs(self, wav: np.ndarray) -> np.ndarray:
        """Per-512-sample speech probabilities, computed as a batch of parallel streams.

        Why: silero-vad is a small recurrent model; fed one 32 ms chunk at a time it is bound by
        per-call overhead (~45x real time on one core here). Cutting the file into up to
        ``max_streams`` contiguous streams and stepping them together as one batch is ~10x faster.
        Each stream starts ``warmup`` chunks early and discards those probabilities, so its recurrent
        state has settled by the time its own audio begins.
        """
        import torch

        win, warmup = 512, self.warmup_chunks
        n = -(-len(wav) // win)
        padded = np.zeros(n * win, dtype=np.float32)
        padded[: len(wav)] = wav
        chunks = torch.from_numpy(padded).reshape(n, win)
        streams = int(max(1, min(self.max_streams, n // self.min_stream_chunks)))
        per = -(-n // streams)
        rows = []
        for b in range(streams):
            lo = max(0, b * per - warmup)
            rows.append((lo, b * per, min(n, (b + 1) * per)))
        steps = max(hi - lo for lo, _, hi in rows)
        batch = torch.zeros(streams, steps, win)
        for b, (lo, _, hi) in enumerate(rows):
            batch[b, : hi - lo] = chunks[lo:hi]
        out = torch.empty(streams, steps)
        self.model.reset_states()
        with torch.inference_mode():
            for j in range(steps):
                out[:, j] = self.model(batch[:, j, :], SR).reshape(-1)
        self.model.reset_states()
        probs = np.concatenate([out[b, start - lo: hi - lo].numpy() for b, (lo, start, hi) in enumerate(rows)])
        return probs[:n]

    def speech_spans(self, wav: np.ndarray) -> list[tuple[float, float]]:
        from silero_vad.utils_vad import get_speech_timestamps_from_probs

        probs = self.speech_probs(wav)
        ts = get_speech_timestamps_from_probs(probs.tolist(), sampling_rate=SR, threshold=self.threshold,
                                              min_silence_duration_ms=self.min_silence_ms,
                                              speech_pad_ms=self.speech_pad_ms, audio_length_samples=len(wav))
        return [(t["start"] / SR, t["end"] / SR) for t in ts]

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[dict[str, Any]] = []
        for row in rows:
            out.extend(self._one(dict(row)))
        return out

    def _one(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        wav = row.get(AUDIO_COLUMN)
        if wav is None:
            return [row]  # text-only row
        wav = np.asarray(wav, dtype=np.float32)
        total = len(wav) / SR
        keep_whole = self.mode == "never" or (self.mode == "auto" and (row.get("text") or total <= self.max_seconds))
        if keep_whole:
            return [row]
        known = row.get("_spans")
        spans = [(float(s), float(e)) for s, e in known] if known else self.speech_spans(wav)
        if not spans:
            return [reject(row, self.name, f"{row.get('audio_path')}: no speech found by VAD in {total:.1f} s; "
                                           f"check the file or lower vad threshold (now {self.threshold})")]
        segs: list[tuple[float, float]] = []
        for s, e in merge_spans(spans, self.min_seconds, self.max_seconds, self.max_gap):
            segs.extend(split_long(wav, s, min(e, total), self.max_seconds, self.min_seconds))
        segs = [(s, e) for s, e in segs if e - s >= self.min_seconds] or segs[:1]
        base_start = float(row.get("start") or 0.0)
        meta = json.loads(row.get("meta") or "{}")
        out = []
        for k, (s, e) in enumerate(segs):
            r = dict(row)
            a, b = int(round(s * SR)), int(round(e * SR))
            r["start"] = round(base_start + a / SR, 6)
            r["duration"] = round((b - a) / SR, 6)
            r["id"] = segment_id(row.get("source") or "", row.get("audio_path"), r["start"], r["duration"],
                                 key=id_key(row["id"]) if row.get("id") else None)
            r["meta"] = json.dumps({**meta, "segment": k, "segments_in_file": len(segs),
                                    "vad": "known_spans" if known else "silero"}, sort_keys=True)
            r[AUDIO_COLUMN] = wav[a:b]
            out.append(r)
        return out
