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
from .vad_windows import FRAME, WindowedScan, frame_energy, scan_whole

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
    """Split ``[start, end)`` of ``wav`` at its quietest 20 ms frames until every piece fits ``max_seconds``."""
    return split_quiet(frame_energy(wav), start, end, max_seconds, min_seconds)


def split_quiet(energy: np.ndarray, start: float, end: float, max_seconds: float,
                min_seconds: float) -> list[tuple[float, float]]:
    """Split ``[start, end)`` recursively at the lowest-energy frame until every piece fits.

    ``energy``: mean square per 20 ms frame on a grid from the file's start (``vad_windows.frame_energy``), so a
    file streamed in windows cuts exactly where the whole waveform would.
    """
    if end - start <= max_seconds:
        return [(start, end)]
    lo, hi = start + min_seconds, end - min_seconds  # both halves keep at least min_seconds
    fa, fb = int(np.ceil(lo * SR / FRAME - 1e-9)), min(len(energy), int(np.floor(hi * SR / FRAME + 1e-9)))
    n = fb - fa
    if n < 1:
        mid = (start + end) / 2
    else:
        # prefer cuts near the middle among equally quiet frames: small tie-breaking penalty
        centre = np.abs(np.arange(n) - n / 2) / max(n, 1)
        mid = (fa + int(np.argmin(energy[fa:fb] + 1e-9 * centre)) + 0.5) * FRAME / SR
    return split_quiet(energy, start, mid, max_seconds, min_seconds) + \
        split_quiet(energy, mid, end, max_seconds, min_seconds)


class VadSegmentStage(Stage):
    """One file row in, one row per speech segment out (or the file row rejected: no speech)."""

    name = "vad_segment"

    def __init__(self, min_seconds: float = 1.0, max_seconds: float = 20.0, max_gap: float = 0.5,
                 threshold: float = 0.5, min_silence_ms: int = 300, speech_pad_ms: int = 60,
                 mode: str = "auto", num_threads: int | None = None, max_streams: int = 128,
                 min_stream_chunks: int = 64, warmup_chunks: int = 16, window_seconds: float = 30.0):
        if not 0 < min_seconds < max_seconds:
            raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds}, {max_seconds}")
        if mode not in ("auto", "always", "never"):
            raise ValueError(f"mode must be auto|always|never, got {mode!r}")
        self.min_seconds, self.max_seconds, self.max_gap = float(min_seconds), float(max_seconds), float(max_gap)
        self.threshold, self.min_silence_ms, self.speech_pad_ms = threshold, int(min_silence_ms), int(speech_pad_ms)
        self.mode = mode
        # stream layout (stages/vad_windows.py): min_stream_chunks = chunks per stream, max_streams per batch
        self.layout = dict(stream_chunks=int(min_stream_chunks), max_streams=int(max_streams),
                           warmup=int(warmup_chunks))
        self.window_seconds = float(window_seconds)
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
        """Per-512-sample speech probabilities of a whole waveform (batched streams, stages/vad_windows.py)."""
        return scan_whole(self.model, np.asarray(wav, dtype=np.float32), **self.layout)[0]

    def spans_from_probs(self, probs: np.ndarray, samples: int) -> list[tuple[float, float]]:
        from silero_vad.utils_vad import get_speech_timestamps_from_probs

        ts = get_speech_timestamps_from_probs(probs.tolist(), sampling_rate=SR, threshold=self.threshold,
                                              min_silence_duration_ms=self.min_silence_ms,
                                              speech_pad_ms=self.speech_pad_ms, audio_length_samples=samples)
        return [(t["start"] / SR, t["end"] / SR) for t in ts]

    def speech_spans(self, wav: np.ndarray) -> list[tuple[float, float]]:
        return self.spans_from_probs(self.speech_probs(wav), len(wav))

    def scan_file(self, path: str, start: float, duration: float | None,
                  vad: bool = True) -> tuple[np.ndarray | None, np.ndarray, int]:
        """(probs, frame energies, samples) of a file's span, decoded in windows: memory flat in file length."""
        from ..manifests.audio_stream import AudioWindows

        scan = WindowedScan(self.model if vad else None, **self.layout)
        for window in AudioWindows(path, start, duration, SR, self.window_seconds, open_end=True):
            scan.feed(window)
        return scan.finish()

    def process(self, rows: list[Row]) -> list[Row]:
        out: list[dict[str, Any]] = []
        for row in rows:
            out.extend(self._one(dict(row)))
        return out

    def _one(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        wav = row.get(AUDIO_COLUMN)
        path = row.get("audio_path")
        if wav is None and not path:
            return [row]  # text-only row
        # no waveform but a file: decode left a long file as a reference (or no decode ran): stream it
        streamed = wav is None
        total = (float(row["duration"]) if row.get("duration") else None) if streamed else len(wav) / SR
        if self._keep_whole(row, total):
            return [row]
        known = row.get("_spans")
        if streamed:
            try:
                probs, energy, samples = self.scan_file(path, float(row.get("start") or 0.0), row.get("duration"),
                                                        vad=not known)
            except Exception as e:  # noqa: BLE001 - an unreadable window rejects its file, with the reason
                return [reject(row, self.name, str(e) if str(e).startswith(str(path)) else f"{path}: {e}")]
            total = samples / SR
            if self._keep_whole(row, total):  # the header's duration was unknown or wrong
                row["duration"] = round(total, 6)
                return [row]
        else:
            wav = np.asarray(wav, dtype=np.float32)
            samples, energy = len(wav), frame_energy(wav)
            probs = None if known else self.speech_probs(wav)
        spans = [(float(s), float(e)) for s, e in known] if known else self.spans_from_probs(probs, samples)
        if not spans:
            return [reject(row, self.name, f"{path}: no speech found by VAD in {total:.1f} s; "
                                           f"check the file or lower vad threshold (now {self.threshold})")]
        segs: list[tuple[float, float]] = []
        for s, e in merge_spans(spans, self.min_seconds, self.max_seconds, self.max_gap):
            segs.extend(split_quiet(energy, s, min(e, total), self.max_seconds, self.min_seconds))
        segs = [(s, e) for s, e in segs if e - s >= self.min_seconds] or segs[:1]
        return self._segment_rows(row, segs, None if streamed else wav, known)

    def _keep_whole(self, row: dict[str, Any], total: float | None) -> bool:
        """``total`` None: a streamed file of unknown length (decided again after the scan)."""
        if self.mode == "never":
            return True
        return self.mode == "auto" and bool(row.get("text") or (total is not None and total <= self.max_seconds))

    def _segment_rows(self, row: dict[str, Any], segs: list[tuple[float, float]], wav: np.ndarray | None,
                      known: Any) -> list[dict[str, Any]]:
        """One row per segment: the file's reference plus start/duration; samples only when the file was decoded
        whole (a streamed file's segments are loaded by later stages, each only its own span)."""
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
            r[AUDIO_COLUMN] = None if wav is None else wav[a:b]
            out.append(r)
        return out
