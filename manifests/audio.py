"""Audio I/O: decode any supported file to mono float32 at 16 kHz.

Which library does what: soundfile (libsndfile) decodes WAV/FLAC/OGG and seeks cheaply, FFmpeg decodes
MP3/M4A/AAC/Opus and whatever libsndfile refuses (the ``ffmpeg`` binary through a pipe, ``ffmpeg_pipe.py``;
torchcodec where no binary is on PATH), soxr resamples (high quality,
fast), numpy down-mixes. Errors are raised as :class:`AudioError` with the file name and a hint,
so the stage can put a readable reason in the errors table.

Sanity bounds (every probe and load checks them, so garbage is rejected at decode, not learned from):
a sample rate within [4000, 384000] Hz and 1 to 32 channels (outside them the header is wrong or it is
not audio: a 10-sample "1 Hz" WAV once became a 10 s row of identical units); at least 25 ms of samples
(shorter than one 20 ms analysis frame plus its hop: nothing a tokenizer or VAD can use); only finite
samples; and a peak amplitude of at most 1000. Integer PCM decodes to [-1, 1]; float files are nominally
in [-1, 1] too, and hot float masters reach a few units, but 1000 is +60 dB over full scale: samples that
are unscaled integers written as floats, or garbage (a 1e30 float WAV once took over half the k-means
codebook, because one loud file outweighs thousands of normal ones in squared-distance clustering).
Only regular files are opened (``os.stat`` first: a FIFO would block the worker forever).
"""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from . import ffmpeg_pipe, storage
from .schema import TARGET_SAMPLE_RATE, seconds_problem

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".sph"}
FFMPEG_EXTS = {".mp3", ".m4a", ".aac", ".opus", ".webm", ".mp4", ".wma"}
AUDIO_EXTS = SOUNDFILE_EXTS | FFMPEG_EXTS
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 384_000  # Hz (see the module docstring for every bound)
MAX_CHANNELS = 32
MIN_FILE_SECONDS = 0.025
MAX_PEAK = 1e3


class AudioError(ValueError):
    """An audio file that cannot be used, with a reason that names it and the fix."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    num_channels: int
    duration: float  # seconds
    num_frames: int


def probe(path: str) -> AudioInfo:
    """Header-level facts about a file (no full decode for soundfile formats)."""
    _check_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FFMPEG_EXTS:
        try:
            i = sf.info(storage.readable(path))  # s3://... is read as a seekable remote file
            return _checked(path, AudioInfo(int(i.samplerate), int(i.channels),
                                            i.frames / i.samplerate if i.samplerate else 0.0, int(i.frames)))
        except RuntimeError as e:
            if ext in SOUNDFILE_EXTS:
                raise AudioError(f"{path}: not a readable {ext} file ({_short(e)}); re-encode it, e.g. "
                                 f"`ffmpeg -i {os.path.basename(path)} -ar 16000 -ac 1 out.flac`") from e
    with storage.local_copy(path) as local:  # FFmpeg needs a local path
        sr, ch, dur = ffmpeg_header(local)
    frames = int(round(dur * sr)) if math.isfinite(dur) and dur < 1e7 else 0
    return _checked(path, AudioInfo(sr, ch, dur, frames))


def ffmpeg_header(path: str) -> tuple[int, int, float]:
    """(rate, channels, header duration or 0) via ffprobe, or torchcodec where no ffmpeg binary is on PATH."""
    if ffmpeg_pipe.available():
        try:
            return ffmpeg_pipe.probe(path)
        except ValueError as e:
            raise AudioError(f"{path}: FFmpeg cannot open it as audio ({e}); is it really an audio file?") from e
    md = _ffmpeg_decoder(path).metadata
    return int(md.sample_rate), int(md.num_channels or 0), float(md.duration_seconds_from_header or
                                                                 md.duration_seconds or 0.0)


def load_audio(path: str, start: float = 0.0, duration: float | None = None,
               target_sr: int = TARGET_SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``[start, start+duration)`` of ``path`` as mono float32 at ``target_sr``.

    Returns the waveform and the *source* file's info. Raises :class:`AudioError` for empty,
    truncated, non-audio or silent-zero-length input, a start/duration that is not usable seconds, and
    a file outside the sanity bounds of the module docstring.
    """
    start = 0.0 if start is None else start
    for name, v in (("start", start), ("duration", duration)):
        bad = None if v is None else seconds_problem(name, v, positive=name == "duration")
        if bad:
            raise AudioError(f"{path}: {bad}")
    _check_file(path)
    ext = os.path.splitext(path)[1].lower()
    wav = None
    info = None
    if ext not in FFMPEG_EXTS:
        try:
            with sf.SoundFile(storage.readable(path)) as f:
                sr, ch, frames = int(f.samplerate), int(f.channels), int(f.frames)
                info = _checked(path, AudioInfo(sr, ch, frames / sr if sr else 0.0, frames))
                first = int(round(start * sr))
                count = -1 if duration is None else int(round(duration * sr))
                if first:
                    f.seek(min(first, frames))
                wav = f.read(frames=count, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            if ext in SOUNDFILE_EXTS:
                raise AudioError(f"{path}: cannot decode ({_short(e)}); the file is corrupt or not {ext}. "
                                 f"Check it with `soxi {os.path.basename(path)}` or re-encode it with ffmpeg") from e
    if wav is None:
        with storage.local_copy(path) as local:
            wav, info = _load_ffmpeg(local, start, duration)
        _checked(path, info, wav.shape[0])
    if wav.size == 0:
        span = f"{start:.2f} s to the end" if duration is None else f"{start:.2f} s + {duration} s"
        raise AudioError(f"{path}: no audio samples from {span}; the file is empty or "
                         f"shorter than the segment: fix start/duration or drop the row")
    check_samples(path, wav)
    mono = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    if info.sample_rate != target_sr:
        mono = soxr.resample(mono, info.sample_rate, target_sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32), info


def check_samples(path: str, wav: np.ndarray) -> None:
    """Raise :class:`AudioError` for NaN/inf samples or a peak beyond ``MAX_PEAK`` (module docstring).

    Shared by :func:`load_audio` and the windowed reader (``audio_stream``), so a long file streamed in
    windows is held to the same bounds as a whole-file decode."""
    if wav.size == 0:
        return
    hi, lo = float(wav.max()), float(wav.min())  # NaN when any sample is; no copy of the audio
    peak = max(hi, -lo)
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AudioError(f"{path}: audio contains NaN/inf samples; the file is corrupt or not audio: re-encode "
                         f"it from its source, or drop it")
    if peak > MAX_PEAK:
        raise AudioError(f"{path}: peak amplitude {peak:.3g} is far beyond full scale (1.0; at most {MAX_PEAK:g} "
                         f"is accepted): the samples are unscaled or garbage. Rescale to [-1, 1] (e.g. divide "
                         f"int16-valued floats by 32768, or `sox {os.path.basename(path)} -b 16 out.wav norm -1`) "
                         f"or drop the file")


def _check_file(path: str) -> None:
    """A regular, non-empty file (``os.stat`` only: nothing is opened before this passes). Remote objects
    (``s3://``) are checked by opening them."""
    if storage.is_remote(path):
        return
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:
        what = "file not found" if isinstance(e, FileNotFoundError) else f"cannot stat it ({e})"
        raise AudioError(f"{path}: {what}; check the manifest's audio_path or the corpus root") from e
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{path}: is a {file_kind(st.st_mode)}, not an audio file; it is never opened. Point "
                         f"audio_path at a regular audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-copy or re-download it")


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (for error reasons)."""
    kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _checked(path: str, info: AudioInfo, decoded_frames: int = 0) -> AudioInfo:
    """``info`` when it is within the sanity bounds (module docstring), else :class:`AudioError` with the fix."""
    sr, ch = info.sample_rate, info.num_channels
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: sample rate {sr} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz: the "
                         f"header is wrong or this is not audio. Re-encode it at a real rate (`ffmpeg -i "
                         f"{os.path.basename(path)} -ar 16000 out.flac`) or drop it")
    if not 1 <= ch <= MAX_CHANNELS:
        raise AudioError(f"{path}: {ch} channels is outside [1, {MAX_CHANNELS}]: the header is wrong or this is "
                         f"not audio. Down-mix it (`ffmpeg -i {os.path.basename(path)} -ac 1 out.flac`) or drop it")
    frames = max(info.num_frames, decoded_frames)
    if frames < MIN_FILE_SECONDS * sr:
        raise AudioError(f"{path}: only {frames} samples ({1000 * frames / sr:.1f} ms), under the "
                         f"{1000 * MIN_FILE_SECONDS:.0f} ms minimum: nothing usable; drop the file")
    return info


def _ffmpeg_decoder(path: str):
    try:
        from torchcodec.decoders import AudioDecoder
    except Exception as e:  # noqa: BLE001 - torchcodec needs the system FFmpeg libraries
        raise AudioError(f"{path}: decoding {os.path.splitext(path)[1]} needs torchcodec with FFmpeg "
                         f"(apt-get install ffmpeg): {_short(e)}") from e
    try:
        return AudioDecoder(path)
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{path}: FFmpeg cannot open it as audio ({_short(e)}); is it really an audio file?") from e


def _load_ffmpeg(path: str, start: float, duration: float | None) -> tuple[np.ndarray, AudioInfo]:
    if ffmpeg_pipe.available():  # a subprocess: no torchcodec (and torch._dynamo) in this worker (ffmpeg_pipe.py)
        sr, ch, dur = ffmpeg_header(path)
        _checked(path, AudioInfo(sr, ch, dur, 0), decoded_frames=sr)  # rate/channels first; length after decoding
        try:
            parts = list(ffmpeg_pipe.blocks(path, ch, start, duration))
        except ValueError as e:
            raise AudioError(f"{path}: FFmpeg failed to decode ({e}); the file may be truncated") from e
        data = parts[0] if parts else np.zeros((0, ch), np.float32)
        return data, AudioInfo(sr, ch, dur or (start + data.shape[0] / sr), int(round((dur or 0) * sr)))
    dec = _ffmpeg_decoder(path)
    md = dec.metadata
    stop = None if duration is None else start + duration
    try:
        samples = dec.get_samples_played_in_range(start_seconds=start, stop_seconds=stop)
    except Exception as e:  # noqa: BLE001
        raise AudioError(f"{path}: FFmpeg failed to decode ({_short(e)}); the file may be truncated") from e
    data = samples.data.numpy().T.astype(np.float32, copy=False)  # (frames, channels)
    sr = int(samples.sample_rate)
    dur = float(md.duration_seconds_from_header or md.duration_seconds or 0.0)
    if not dur or math.isnan(dur):
        dur = data.shape[0] / sr
    return data, AudioInfo(sr, int(md.num_channels or data.shape[1]), dur, int(round(dur * sr)))


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__
