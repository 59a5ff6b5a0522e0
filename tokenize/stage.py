"""TokenizeStage: add `units` (or `codes`), `unit_durations`, `unit_rate_hz` and `tokenizer` to segment rows.

Why this shape: the model and centroids load once in ``__init__`` (once per Ray actor); ``process`` gets a
batch of rows, decodes missing audio on a thread pool while nothing else is running, hands every waveform to
the tokenizer in one call (the tokenizer sorts and buckets by length and pads with masks), and writes results
back per row. Rows with unusable audio are rejected with a reason; nothing is dropped.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..manifests.schema import AUDIO_COLUMN
from ..stages.base import Row, Stage, reject
from . import kmeans as km
from . import postprocess
from .base import set_cpu_threads
from .factory import backend_class, build_backend, build_features
from .quantized import KMeansTokenizer

log = logging.getLogger("slmfactory.tokenize")
MIN_SAMPLES = 400  # one 25 ms analysis window at 16 kHz


def build_tokenizer(tokenizer: str = "spectral", kmeans: str | None = None, **params: Any) -> Any:
    """What the stage runs: the backend itself when it gives units (codecs), else its frame features quantized
    by the k-means centroids saved at ``kmeans`` (the backend comes from ``factory``, like k-means training's)."""
    cls = backend_class(tokenizer, params.get("preset"))
    if not cls.needs_kmeans:
        return build_backend(tokenizer, **params)
    if not kmeans:
        raise ValueError(f"tokenizer={cls.name} needs kmeans=<path prefix of .npy/.json>; train one with "
                         f"`slmfactory kmeans train` or the recipe's ensure_kmeans prepare hook")
    return KMeansTokenizer(build_features(tokenizer, **params), km.load(kmeans))


class TokenizeStage(Stage):
    """Speech units (features + k-means) or codec codes for every segment, by a registered speech tokenizer."""

    name = "tokenize"

    def __init__(self, tokenizer: str = "spectral", kmeans: str | None = None, checkpoint: str | None = None,
                 layer: int | None = None, preset: str | None = None, precision: str | None = None,
                 dedup: bool = False, offset: int = 0, bpe: str | None = None, batch_seconds: float | None = None,
                 device: str = "auto", num_codebooks: int = 8, num_threads: int | None = None,
                 load_workers: int = 4, chunk_rows: int | None = None, **params: Any):
        self.tok = build_tokenizer(tokenizer, kmeans=kmeans, checkpoint=checkpoint, layer=layer, preset=preset,
                                   precision=precision, batch_seconds=batch_seconds, device=device,
                                   num_codebooks=num_codebooks, **params)
        if getattr(self.tok, "device", getattr(getattr(self.tok, "extractor", None), "device", "cpu")) == "cpu":
            set_cpu_threads(num_threads)
        self.multi = self.tok.num_codebooks > 1
        self.dedup, self.offset = bool(dedup), int(offset or 0)
        self.bpe = postprocess.UnitBPE(bpe) if bpe else None
        if self.multi and (dedup or self.bpe):
            raise ValueError(f"dedup/bpe apply to single-codebook units; {self.tok.label} has "
                             f"{self.tok.num_codebooks} codebooks")
        self.load_workers = load_workers
        # rows encoded per call when audio is decoded here: few when each item is its own forward (decode of
        # the next rows overlaps compute sooner), many for padded batches (more rows sort into tighter buckets)
        ext = getattr(self.tok, "extractor", self.tok)
        one_by_one = getattr(ext, "device", "cpu") == "cpu" and not getattr(ext, "batch_seconds", 0)
        self.chunk_rows = int(chunk_rows or (4 if one_by_one else 64))
        self.tokenizer_name = self.tok.label + (f"+off{self.offset}" if self.offset else "") + \
            ("+dedup" if dedup else "") + ("+bpe" if self.bpe else "")

    def _get_audio(self, r: dict[str, Any]) -> np.ndarray | str:
        """The row's waveform, or a reject reason naming the input and the fix."""
        from ..manifests.audio import load_audio

        a = r.get(AUDIO_COLUMN)
        if a is None:
            path = r.get("audio_path")
            if not path:
                return f"row {r.get('id')}: no audio and no audio_path; run decode/load_audio first or fix the manifest"
            try:
                dur = r.get("duration")
                a = load_audio(path, float(r.get("start") or 0.0), float(dur) if dur else None)[0]
            except Exception as e:  # noqa: BLE001 - the reason goes to the errors table
                return str(e)
        a = np.asarray(a, dtype=np.float32)
        where = r.get("audio_path") or r.get("id")
        if a.size < MIN_SAMPLES:
            return (f"{where}: segment has {a.size} samples (< {MIN_SAMPLES}, 25 ms at 16 kHz); too short to "
                    f"tokenize, fix the segmentation")
        if not np.isfinite(a).all():
            return f"{where}: audio has NaN/inf samples; re-encode it"
        return a

    def process(self, rows: list[Row]) -> list[Row]:
        need_io = any(r.get(AUDIO_COLUMN) is None for r in rows)
        if need_io and self.load_workers > 1 and len(rows) > 1:
            # decode on threads, in order; the model works on chunk i while chunk i+1 is being decoded
            # (file I/O, libsndfile, soxr and torch all release the GIL)
            with ThreadPoolExecutor(self.load_workers) as ex:
                futures = [ex.submit(self._get_audio, r) for r in rows]
                step = self.chunk_rows
                for s in range(0, len(rows), step):
                    self._encode_rows(rows[s: s + step], [f.result() for f in futures[s: s + step]])
        else:
            self._encode_rows(rows, [self._get_audio(r) for r in rows])
        return rows

    def _encode_rows(self, rows: list[dict[str, Any]], audio: list[np.ndarray | str]) -> None:
        good = []
        for i, (r, a) in enumerate(zip(rows, audio)):
            if isinstance(a, str):
                reject(r, self.name, a)
            else:
                good.append(i)
        encoded = self.tok.encode([audio[i] for i in good]) if good else []
        for i, u in zip(good, encoded):
            r = rows[i]
            if self.multi:
                r["codes"] = [list(map(int, q)) for q in u]
                r["units"] = None
            else:
                u = np.asarray(u, np.int32)
                if self.dedup:
                    u, d = postprocess.dedup(u)
                    r["unit_durations"] = d.tolist()
                if self.bpe:
                    u = np.asarray(self.bpe.encode(u), np.int32)
                if self.offset:
                    u = postprocess.offset(u, self.offset)
                r["units"] = u.tolist()
            r["unit_rate_hz"] = float(self.tok.frame_rate_hz)
            r["tokenizer"] = self.tokenizer_name
