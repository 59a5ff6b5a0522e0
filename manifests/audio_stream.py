"""Windowed decode of long audio: mono float32 at 16 kHz, one window at a time, never the whole file.

Why: a 2-hour 44.1 kHz stereo MP3 is 2.5 GB of float32 samples before down-mix; decoding it whole made one
worker peak at 5.9 GB. :class:`AudioWindows` reads a file (or its ``[start, start+duration)`` span) in
windows of ``window_seconds``, so a worker's memory does not grow with the file's length.

The samples are the ones a whole-file :func:`~slmfactory.manifests.audio.load_audio` returns, bit for bit:
soundfile reads consecutive blocks; torchcodec (FFmpeg) decodes consecutive ranges from one decoder (no
seek between windows); the down-mix is per sample; and ``soxr.ResampleStream`` produces what
``soxr.resample`` produces on the whole array (tests/test_long_audio.py checks all three). Every window is
held to the same sanity bounds as a whole-file load (``check_samples``: NaN/inf, peak), and the file's
header to the probe's bounds, so streaming rejects what decoding whole rejects.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from . import ffmpeg_pipe, storage
from .audio import (FFMPEG_EXTS, SOUNDFILE_EXTS, AudioError, AudioInfo, _check_file, _checked, _ffmpeg_decoder,
                    _short, check_samples, ffmpeg_header)
from .schema import TARGET_SAMPLE_RATE, seconds_problem


# a header whose duration FFmpeg cannot tell (0) must not fail the 25 ms minimum before decoding: the decoded
# sample count is checked after the stream instead (``_checked(path, info, native)``)
MIN_PROBE_SECONDS_OK = 1.0


class AudioWindows:
    """Iterate ``path``'s ``[start, start+duration)`` as consecutive mono float32 windows at ``target_sr``.

    ``info`` (the source file's rate, channels, header duration) is known once the iteration started;
    ``samples`` counts the target-rate samples yielded so far. Raises :class:`AudioError` (naming the file and
    the fix) for what :func:`load_audio` rejects: missing/special/empty files, unreadable or truncated data,
    NaN/inf or absurd peaks, a span with no samples.
    """

    def __init__(self, path: str, start: float | None = 0.0, duration: float | None = None,
                 target_sr: int = TARGET_SAMPLE_RATE, window_seconds: float = 30.0, open_end: bool = False):
        start = 0.0 if start is None else start
        for name, v in (("start", start), ("duration", duration)):
            bad = None if v is None else seconds_problem(name, v, positive=name == "duration")
            if bad:
                raise AudioError(f"{path}: {bad}")
        self.path, self.start, self.duration = path, float(start), duration
        self.target_sr, self.window_seconds = int(target_sr), float(window_seconds)
        self.open_end = open_end  # a span that ends where the header says the file ends reads to the real end
        self.info: AudioInfo | None = None
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        _check_file(self.path)
        ext = os.path.splitext(self.path)[1].lower()
        raw = self._soundfile() if ext not in FFMPEG_EXTS else None
        if raw is None:
            raw = self._ffmpeg()
        resampler = None
        native = 0
        for block in raw:  # (frames, channels) float32 at the source rate
            native += block.shape[0]
            check_samples(self.path, block)
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if self.info.sample_rate != self.target_sr:
                if resampler is None:
                    resampler = soxr.ResampleStream(self.info.sample_rate, self.target_sr, 1, dtype="float32",
                                                    quality="HQ")
                mono = resampler.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32))
            if mono.size:
                self.samples += mono.size
                yield np.ascontiguousarray(mono, dtype=np.float32)
        if native == 0:
            span = f"{self.start:.2f} s to the end" if self.duration is None else \
                f"{self.start:.2f} s + {self.duration} s"
            raise AudioError(f"{self.path}: no audio samples from {span}; the file is empty or shorter than the "
                             f"segment: fix start/duration or drop the row")
        _checked(self.path, self.info, native)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                self.samples += tail.size
                yield np.ascontiguousarray(tail, dtype=np.float32)

    def _soundfile(self) -> Iterator[np.ndarray] | None:
        """Blocks from libsndfile, or None when libsndfile cannot open a file that FFmpeg may read."""
        ext = os.path.splitext(self.path)[1].lower()
        try:
            f = sf.SoundFile(storage.readable(self.path))
        except (RuntimeError, sf.LibsndfileError) as e:
            if ext in SOUNDFILE_EXTS:
                raise AudioError(f"{self.path}: cannot decode ({_short(e)}); the file is corrupt or not {ext}. "
                                 f"Check it with `soxi {os.path.basename(self.path)}` or re-encode it") from e
            return None
        sr, ch, frames = int(f.samplerate), int(f.channels), int(f.frames)
        try:
            self.info = _checked(self.path, AudioInfo(sr, ch, frames / sr if sr else 0.0, frames))
        except AudioError:
            f.close()
            raise
        return self._sf_blocks(f)

    def _sf_blocks(self, f: sf.SoundFile) -> Iterator[np.ndarray]:
        sr, frames = self.info.sample_rate, self.info.num_frames
        first = min(int(round(self.start * sr)), frames)
        left = frames - first if self.duration is None else min(frames - first, int(round(self.duration * sr)))
        step = max(1, int(self.window_seconds * sr))
        with f:
            if first:
                f.seek(first)
            while left > 0:
                try:
                    block = f.read(frames=min(step, left), dtype="float32", always_2d=True)
                except (RuntimeError, sf.LibsndfileError) as e:
                    raise AudioError(f"{self.path}: cannot decode ({_short(e)}); the file is corrupt or truncated. "
                                     f"Check it with `soxi {os.path.basename(self.path)}` or re-encode it") from e
                if not len(block):
                    break
                left -= len(block)
                yield block

    def _ffmpeg(self) -> Iterator[np.ndarray]:
        """Blocks of one ``ffmpeg`` pipe (ffmpeg_pipe.py), or consecutive ranges of one torchcodec decoder where no
        ffmpeg binary is on PATH: either way FFmpeg decodes on from where it stopped (no seek between windows)."""
        if ffmpeg_pipe.available():
            sr, ch, dur = ffmpeg_header(self.path)
            self.info = _checked(self.path, AudioInfo(sr, ch, dur, int(round(dur * sr))),
                                 decoded_frames=int(MIN_PROBE_SECONDS_OK * sr))
            duration = self.duration
            if self.open_end and duration is not None and abs(self.start + duration - dur) < 0.01:
                duration = None  # MP3 headers estimate the length (VBR without a TOC): decode until FFmpeg stops
            try:
                yield from ffmpeg_pipe.blocks(self.path, ch, self.start, duration,
                                              max(1, int(self.window_seconds * sr)))
            except ValueError as e:
                raise AudioError(f"{self.path}: FFmpeg failed to decode ({e}); the file may be truncated") from e
            return
        dec = _ffmpeg_decoder(self.path)
        md = dec.metadata
        sr = int(md.sample_rate)
        dur = float(md.duration_seconds_from_header or md.duration_seconds or 0.0)
        self.info = _checked(self.path, AudioInfo(sr, int(md.num_channels or 0), dur, int(round(dur * sr))),
                             decoded_frames=int(MIN_PROBE_SECONDS_OK * sr))
        a = int(round(self.start * sr))
        end = None if self.duration is None else a + int(round(self.duration * sr))
        if self.open_end and self.duration is not None and abs(self.start + self.duration - dur) < 0.01:
            end = None  # MP3 headers estimate the length (VBR without a TOC): decode until FFmpeg stops
        step = max(1, int(self.window_seconds * sr))
        while end is None or a < end:
            b = a + step if end is None else min(a + step, end)
            try:
                data = dec.get_samples_played_in_range(start_seconds=a / sr, stop_seconds=b / sr).data
            except RuntimeError as e:
                if "No audio frames" in str(e):
                    return  # past the last frame: the end of the file
                raise AudioError(f"{self.path}: FFmpeg failed to decode ({_short(e)}); the file may be truncated") from e
            except Exception as e:  # noqa: BLE001
                raise AudioError(f"{self.path}: FFmpeg failed to decode ({_short(e)}); the file may be truncated") from e
            if data.shape[1] == 0:
                return
            yield data.numpy().T.astype(np.float32, copy=False)
            a = b

