"""Audio I/O: decode any supported file to mono float32 at 16 kHz.

Which library does what: soundfile (libsndfile) decodes WAV/FLAC/OGG and seeks cheaply, torchcodec
(FFmpeg) decodes MP3/M4A/AAC/Opus and whatever libsndfile refuses, soxr resamples (high quality,
fast), numpy down-mixes. Errors are raised as :class:`AudioError` with the file name and a hint,
so the stage can put a readable reason in the errors table.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from .schema import TARGET_SAMPLE_RATE

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".sph"}
FFMPEG_EXTS = {".mp3", ".m4a", ".aac", ".opus", ".webm", ".mp4", ".wma"}
AUDIO_EXTS = SOUNDFILE_EXTS | FFMPEG_EXTS


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
            i = sf.info(path)
            return AudioInfo(int(i.samplerate), int(i.channels), i.frames / i.samplerate, int(i.frames))
        except RuntimeError as e:
            if ext in SOUNDFILE_EXTS:
                raise AudioError(f"{path}: not a readable {ext} file ({_short(e)}); re-encode it, e.g. "
                                 f"`ffmpeg -i {os.path.basename(path)} -ar 16000 -ac 1 out.flac`") from e
    dec = _ffmpeg_decoder(path)
    md = dec.metadata
    sr = int(md.sample_rate)
    dur = float(md.duration_seconds_from_header or md.duration_seconds or 0.0)
    return AudioInfo(sr, int(md.num_channels), dur, int(round(dur * sr)))


def load_audio(path: str, start: float = 0.0, duration: float | None = None,
               target_sr: int = TARGET_SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``[start, start+duration)`` of ``path`` as mono float32 at ``target_sr``.

    Returns the waveform and the *source* file's info. Raises :class:`AudioError` for empty,
    truncated, non-audio or silent-zero-length input.
    """
    _check_file(path)
    ext = os.path.splitext(path)[1].lower()
    wav = None
    info = None
    if ext not in FFMPEG_EXTS:
        try:
            with sf.SoundFile(path) as f:
                sr, ch, frames = int(f.samplerate), int(f.channels), int(f.frames)
                info = AudioInfo(sr, ch, frames / sr if sr else 0.0, frames)
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
        wav, info = _load_ffmpeg(path, start, duration)
    if wav.size == 0:
        raise AudioError(f"{path}: no audio samples in [{start:.2f}s, +{duration}s]; the file is empty or "
                         f"shorter than the segment")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN/inf samples; re-encode it")
    mono = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    if info.sample_rate != target_sr:
        mono = soxr.resample(mono, info.sample_rate, target_sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32), info


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found; check the manifest's audio_path or the corpus root")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-copy or re-download it")


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
