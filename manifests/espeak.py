"""The one espeak-ng wrapper: text in (through stdin), mono float32 out.

Why one copy: the test-corpus generator and the ``espeak`` TTS backend both speak with espeak-ng, and
both must pass text on stdin (a text starting with "-" would otherwise be read as an option), fail
with the same clear message, and resample the same way.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache

import numpy as np
import soundfile as sf
import soxr

INSTALL = "`apt-get install espeak-ng` (or `make setup` as root)"


class EspeakError(RuntimeError):
    """espeak-ng is missing or refused the request; the message says what to do."""


def binary(name: str = "espeak-ng") -> str:
    """The espeak-ng executable, or an error naming the install command."""
    path = shutil.which(name)
    if path is None:
        raise EspeakError(f"{name} is not installed: {INSTALL}")
    return path


def available(name: str = "espeak-ng") -> bool:
    return shutil.which(name) is not None


def speak(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, sample_rate: int | None = None,
          exe: str = "espeak-ng") -> tuple[np.ndarray, int]:
    """Speak ``text``; returns (mono float32 waveform, its sample rate: ``sample_rate`` or espeak's own)."""
    cmd = [binary(exe), "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)), "--stdout"]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True)
    if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
        msg = proc.stderr.decode("utf-8", "replace").strip()[:200]
        raise EspeakError(f"espeak-ng failed for voice {voice!r} ({msg or 'no audio'}); list voices with "
                          f"`espeak-ng --voices=en` and variants with `espeak-ng --voices=variant`")
    wav, native = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    wav = wav[:, 0]
    if sample_rate and native != sample_rate:
        wav = soxr.resample(wav, native, sample_rate).astype(np.float32)
        native = sample_rate
    return np.ascontiguousarray(wav, dtype=np.float32), int(native)


@lru_cache(maxsize=4)
def catalog(exe: str = "espeak-ng") -> tuple[frozenset[str], frozenset[str]]:
    """Voice names (language codes, names, files) and variant names this espeak-ng knows (lower case)."""
    def table(arg: str) -> list[list[str]]:
        out = subprocess.run([binary(exe), arg], capture_output=True, text=True).stdout.splitlines()[1:]
        return [ln.split() for ln in out if len(ln.split()) >= 5]

    voices: set[str] = set()
    for cols in table("--voices"):
        voices.update(x.lower() for x in (cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]))
    variants: set[str] = set()
    for cols in table("--voices=variant"):
        variants.update(x.lower() for x in (cols[3], cols[4].rsplit("/", 1)[-1]))
    return frozenset(voices), frozenset(variants)
