"""FFmpeg as a subprocess: probe with ``ffprobe``, decode to a float32 pipe read in blocks.

Why a subprocess rather than torchcodec in-process: importing torchcodec imports ``torch._dynamo`` (and
triton): ~190 MB of resident memory in every worker that ever decodes an MP3, a fifth of the 1 GB a worker
may use on hour-long audio (docs/scale.md). The ``ffmpeg`` process holds only its decoder state; we read its
output one block at a time, so a 2-hour file never sits in memory. A whole-file read and a block-by-block read
are the same byte stream, so windows equal the whole decode exactly. ``-ss`` before ``-i`` seeks and then
drops samples up to the exact start, so a segment load reads only (about) its own span.
torchcodec stays the fallback where no ``ffmpeg``/``ffprobe`` binary is on PATH (``manifests/audio.py``).
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
from typing import Iterator

import numpy as np


def available() -> bool:
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def probe(path: str) -> tuple[int, int, float]:
    """(sample rate, channels, duration seconds or 0.0 when unknown) of the first audio stream.

    Raises ``ValueError`` with FFmpeg's first error line when it is not readable audio. Cached per file
    version (path, size, mtime): later stages load hundreds of segments of one long file, one ffprobe is enough."""
    st = os.stat(path)
    return _probe(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _probe(path: str, size: int, mtime_ns: int) -> tuple[int, int, float]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels,duration:format=duration", "-of", "json", path]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ValueError("ffprobe timed out after 120 s") from e
    info = json.loads(p.stdout or "{}") if p.returncode == 0 else {}
    streams = info.get("streams") or []
    if not streams:
        why = (p.stderr.strip().splitlines() or ["no audio stream"])[0]
        raise ValueError(why[:200])
    s = streams[0]
    dur = _seconds(s.get("duration")) or _seconds((info.get("format") or {}).get("duration"))
    return int(s.get("sample_rate") or 0), int(s.get("channels") or 0), dur


def _seconds(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f > 0 else 0.0


def blocks(path: str, channels: int, start: float = 0.0, duration: float | None = None,
           block_frames: int | None = None) -> Iterator[np.ndarray]:
    """``(frames, channels)`` float32 blocks of ``[start, start+duration)`` at the file's own rate.

    ``block_frames=None`` reads everything as one block. Raises ``ValueError`` (FFmpeg's first error line)
    when ffmpeg fails; a block may be shorter than asked only at the end."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    cmd += ["-i", path]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-map", "0:a:0", "-ac", str(channels), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    frame_bytes = 4 * channels
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty ffmpeg can never block on stderr
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            if block_frames is None:
                buf = proc.stdout.read()
                n = len(buf) // frame_bytes
                if n:  # a writable copy: callers own their arrays
                    yield np.frombuffer(buf, np.float32, count=n * channels).reshape(n, channels).copy()
            else:
                while True:
                    block = np.empty((block_frames, channels), np.float32)
                    view, got = memoryview(block).cast("B"), 0
                    while got < len(view):  # readinto: straight into the array, no bytes copy
                        k = proc.stdout.readinto(view[got:])
                        if not k:
                            break
                        got += k
                    n = got // frame_bytes
                    if n:
                        yield block[:n]
                    if got < len(view):
                        break
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # the reader stopped early: end ffmpeg, never leave it behind
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if rc != 0:
            err.seek(0)
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise ValueError((lines[0] if lines else f"ffmpeg exited with {rc}")[:200].replace(os.linesep, " "))
