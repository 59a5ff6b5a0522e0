"""Corpus sample for k-means: seeded, streamed, real durations; features of only the sampled spans.

Why: the k-means ``prepare`` hook runs in the driver over the whole corpus (LibriLight: 60k hours in files
up to hours long). Listing every row, decoding whole files and counting a file of unknown length as 10 s
made "1 hour of sample" mean hundreds of whole files decoded in one process. Here:

* every input row gets a priority from a hash of (seed, audio_path, start): the sample is the rows of lowest
  priority whose audio adds up to ``hours`` - the same rows whatever order discovery yields them in;
* the rows are streamed through a bounded heap (only the current sample is held), and a row's duration is
  read from its header (``manifests.audio.probe``: soundfile's header, FFmpeg's container metadata) only when
  its priority could still enter the sample: about ``m * (1 + ln(N / m))`` probes for m sampled of N rows;
* a long file contributes one seeded crop of at most ``crop_seconds`` (diversity: an hour of sample spans
  many speakers, not two audiobooks), and only that span is ever decoded (``load_audio`` seeks);
* the features are extracted as Ray Data work when a Ray cluster is up (one feature model per worker), or in
  a plain loop otherwise. Unreadable files are skipped with a warning, never fatal.
"""
from __future__ import annotations

import hashlib
import heapq
import logging
from typing import Any, Iterable, Iterator

import numpy as np

log = logging.getLogger("slmfactory.tokenize")


def priority(seed: int, row: dict[str, Any]) -> float:
    """Uniform in [0, 1), a pure function of the seed and where the audio is (not of the input order)."""
    key = f"{seed}|{row.get('audio_path')}|{float(row.get('start') or 0.0):.6f}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0 ** 64


def row_seconds(row: dict[str, Any]) -> float:
    """The row's real length: its ``duration``, else the file's header length after ``start`` (raises AudioError)."""
    dur = row.get("duration")
    if dur:
        return float(dur)
    from ..manifests.audio import probe

    return max(0.0, probe(row["audio_path"]).duration - float(row.get("start") or 0.0))


def sample_spans(rows: Iterable[dict[str, Any]], hours: float, seed: int, crop_seconds: float | None = 30.0,
                 stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The lowest-priority rows whose (cropped) audio reaches ``hours``; each as ``{audio_path, start, duration}``.

    A row longer than ``crop_seconds`` is represented by one seeded crop of that length. Rows without audio,
    rejected rows and files whose header cannot be read are skipped (counted in ``stats["skipped"]``).
    Returned in priority order. All rows when the corpus holds less than ``hours``.
    """
    budget = float(hours) * 3600.0
    heap: list[tuple[float, int, dict[str, Any]]] = []  # max-heap on priority (negated)
    total, probes, skipped, tie = 0.0, 0, 0, 0
    for row in rows:
        if not row.get("audio_path") or row.get("error"):
            continue
        p = priority(seed, row)
        if heap and total >= budget and p >= -heap[0][0]:
            continue  # cannot enter the sample: no header read
        try:
            probes += not row.get("duration")
            secs = row_seconds(row)
        except Exception as e:  # noqa: BLE001 - a bad file must not stop training
            log.warning("k-means sample: skipping %s: %s", row.get("audio_path"), e)
            skipped += 1
            continue
        if secs <= 0:
            continue
        span = _crop(row, secs, crop_seconds, p)
        tie += 1
        heapq.heappush(heap, (-p, tie, span))
        total += span["duration"]
        while heap and total - heap[0][2]["duration"] >= budget:
            total -= heapq.heappop(heap)[2]["duration"]
    if stats is not None:
        stats.update(probes=probes, skipped=skipped)
    return [s for _, _, s in sorted(heap, key=lambda t: -t[0])]


def _crop(row: dict[str, Any], secs: float, crop_seconds: float | None, p: float) -> dict[str, Any]:
    start = float(row.get("start") or 0.0)
    if crop_seconds and secs > crop_seconds:
        # the crop's offset comes from the priority's low bits: seeded, independent of the other rows
        u = (p * 2 ** 20) % 1.0
        return {"audio_path": row["audio_path"], "start": round(start + u * (secs - crop_seconds), 3),
                "duration": float(crop_seconds)}
    return {"audio_path": row["audio_path"], "start": start, "duration": float(secs)}


def span_audio(spans: Iterable[dict[str, Any]]) -> Iterator[np.ndarray]:
    """Decode each span (only its samples); unreadable ones are skipped with a warning."""
    from ..manifests.audio import load_audio

    for s in spans:
        try:
            yield load_audio(s["audio_path"], float(s["start"]), float(s["duration"]))[0]
        except Exception as e:  # noqa: BLE001
            log.warning("k-means sample: skipping %s: %s", s.get("audio_path"), e)


def collect_features(extractor, wavs: Iterable[np.ndarray], batch: int = 8) -> np.ndarray:
    feats, buf = [], []
    for w in wavs:
        buf.append(w)
        if len(buf) >= batch:
            feats += extractor.features(buf)
            buf = []
    if buf:
        feats += extractor.features(buf)
    feats = [f for f in feats if len(f)]
    if not feats:
        raise ValueError("no feature frames: the sampled audio is empty or shorter than one frame")
    return np.concatenate(feats).astype(np.float32)


def ray_running() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


class _SpanFeatures:
    """Ray Data actor: builds the feature model once, turns a batch of spans into a (frames, dim) block."""

    def __init__(self, params: dict[str, Any]):
        from .factory import build_features

        self.extractor = build_features(**params)
        # an empty block must have the same tensor shape as the others: learn the feature width once
        self.dim = int(self.extractor.features([np.zeros(16000, np.float32)])[0].shape[1])

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        spans = [{"audio_path": p, "start": s, "duration": d}
                 for p, s, d in zip(batch["audio_path"], batch["start"], batch["duration"])]
        wavs = list(span_audio(spans))
        feats = [f for f in (self.extractor.features(wavs) if wavs else []) if len(f)]
        if not feats:
            return {"f": np.zeros((0, self.dim), np.float32)}
        return {"f": np.concatenate(feats).astype(np.float32)}


def ray_features(spans: list[dict[str, Any]], extractor_params: dict[str, Any], batch: int = 8,
                 workers: int | None = None) -> np.ndarray:
    """Features of ``spans`` as Ray Data work (an actor pool, one feature model per actor), gathered here."""
    import ray

    n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    ds = ray.data.from_items(spans).map_batches(_SpanFeatures, fn_constructor_kwargs={"params": extractor_params},
                                                batch_size=batch, num_cpus=1,
                                                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n))
    parts = [b["f"] for b in ds.iter_batches(batch_format="numpy", batch_size=None) if b["f"].shape[0]]
    if not parts:
        raise ValueError("no feature frames: the sampled audio is empty or shorter than one frame")
    return np.concatenate(parts).astype(np.float32, copy=False)
