"""TTS backends behind one interface, ``synthesize(texts, voices) -> waveforms``, and a voice sampler.

Why one interface: recipes pick an engine by name (``espeak`` offline default, ``coqui`` VITS/XTTS from a
local model folder, ``piper`` ONNX voice from a local file) and everything downstream (FLAC writing,
gates, export) sees float32 mono arrays at ``backend.sample_rate``.

Why a sampler: instruction data spoken by one voice teaches a model one voice. ``VoiceSampler`` spreads
items over voices (and espeak rate/pitch variants) by a seeded hash of the item id, so the choice is
the same on every worker, shard order and resume.

Voice strings are engine-specific: espeak ``en-us+f3`` with optional ``@rate,pitch`` (``en-gb+m3@150,40``);
coqui a speaker name (VITS multi-speaker) or a reference clip path (XTTS cloning); piper a speaker id.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import soundfile as sf
import soxr

TTS_INSTALL = "pip install 'slmfactory[tts]'"
# espeak-ng English voices x variants that stay intelligible (checked with the alignment gate).
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland"]
ESPEAK_VARIANTS = ["", "+f2", "+f3", "+f4", "+m3", "+m7"]


class TtsError(RuntimeError):
    """A TTS backend that cannot run, with the fix."""


class TtsBackend(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]: ...

    def voices(self) -> list[str]: ...


# --- espeak-ng ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EspeakVoice:
    name: str
    rate: int | None = None  # words per minute
    pitch: int | None = None  # 0..99

    @classmethod
    def parse(cls, spec: str) -> "EspeakVoice":
        name, _, rest = spec.partition("@")
        rate = pitch = None
        if rest:
            parts = rest.split(",")
            try:
                rate = int(parts[0]) if parts[0] else None
                pitch = int(parts[1]) if len(parts) > 1 and parts[1] else None
            except ValueError as e:
                raise TtsError(f"voice {spec!r}: expected 'name@rate,pitch' with integers, "
                               f"e.g. 'en-us+f3@160,50'") from e
        return cls(name, rate, pitch)


class EspeakTts:
    """espeak-ng through its CLI: offline, ~100 voice/variant combinations, rate and pitch.

    ``workers`` > 1 runs several espeak-ng processes at once (that is what "batched" means for a
    formant synthesizer: there is no model to batch, only process start-up to overlap).
    """

    name = "espeak"

    def __init__(self, rate: int = 160, pitch: int = 50, sample_rate: int | None = None, workers: int = 4,
                 binary: str = "espeak-ng"):
        self.binary = shutil.which(binary)
        if self.binary is None:
            raise TtsError(f"{binary} is not installed: `apt-get install espeak-ng` (or use backend: coqui/piper)")
        self.rate, self.pitch, self.workers = rate, pitch, max(1, int(workers))
        self.known_voices, self.known_variants = _espeak_catalog(self.binary)
        self.native_rate = 22050
        self.sample_rate = int(sample_rate or self.native_rate)

    def voices(self) -> list[str]:
        return [v + var for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS]

    def check_voice(self, voice: str) -> None:
        """espeak-ng silently falls back to its default voice on a typo; we refuse instead."""
        name, _, variant = EspeakVoice.parse(voice).name.partition("+")
        if name.lower() not in self.known_voices or (variant and variant.lower() not in self.known_variants):
            raise TtsError(f"espeak-ng has no voice {voice!r}; list voices with `espeak-ng --voices=en` and "
                           f"variants with `espeak-ng --voices=variant` (e.g. en-us+f3)")

    def _one(self, text: str, voice: str) -> np.ndarray:
        self.check_voice(voice or "en-us")
        v = EspeakVoice.parse(voice or "en-us")
        cmd = [self.binary, "-v", v.name, "-s", str(v.rate or self.rate), "-p", str(v.pitch if v.pitch is not None
                                                                                      else self.pitch), "--stdout"]
        # the text goes through stdin so that a text starting with '-' is never read as an option
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True)
        if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
            msg = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise TtsError(f"espeak-ng failed for voice {voice!r} ({msg or 'no audio'}); list voices with "
                           f"`espeak-ng --voices=en` and `espeak-ng --voices=variant`")
        wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        wav = wav[:, 0]
        if sr != self.sample_rate:
            wav = soxr.resample(wav, sr, self.sample_rate).astype(np.float32)
        return np.ascontiguousarray(wav, dtype=np.float32)

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        _check_lengths(texts, voices)
        if self.workers == 1 or len(texts) <= 1:
            return [self._one(t, v) for t, v in zip(texts, voices)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._one, texts, voices))


def _espeak_catalog(binary: str) -> tuple[set[str], set[str]]:
    """Voice names (language codes, names, files) and variant names that this espeak-ng knows."""
    def table(arg: str) -> list[list[str]]:
        out = subprocess.run([binary, arg], capture_output=True, text=True).stdout.splitlines()[1:]
        return [ln.split() for ln in out if len(ln.split()) >= 5]

    voices: set[str] = set()
    for cols in table("--voices"):
        voices.update(x.lower() for x in (cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]))
    variants: set[str] = set()
    for cols in table("--voices=variant"):
        variants.update(x.lower() for x in (cols[3], cols[4].rsplit("/", 1)[-1]))
    return voices, variants


# --- Coqui TTS (coqui-tts package) ---------------------------------------------------------------
class CoquiTts:
    """VITS or XTTS from a local model folder (``config.json`` + checkpoint), via the maintained ``coqui-tts``.

    For XTTS, a voice is a reference speaker clip (path to a WAV) used for cloning; for multi-speaker
    VITS it is a speaker name from the model. ``language`` is needed by multilingual models.
    """

    name = "coqui"

    def __init__(self, model_dir: str, language: str | None = None, device: str = "cpu",
                 speaker_wav: str | None = None):
        if not model_dir or not os.path.isdir(model_dir):
            raise TtsError(f"coqui model_dir {model_dir!r} is not a folder; give the local folder holding "
                           f"config.json and the checkpoint (we never download models)")
        cfg = os.path.join(model_dir, "config.json")
        if not os.path.exists(cfg):
            raise TtsError(f"{model_dir}: no config.json; point model_dir at an unpacked Coqui model folder")
        try:
            from TTS.api import TTS  # type: ignore[import-not-found]
        except ImportError as e:
            raise TtsError(f"the coqui backend needs the coqui-tts package: {TTS_INSTALL} ({e})") from e
        self.tts = TTS(model_path=model_dir, config_path=cfg, progress_bar=False).to(device)
        self.language, self.speaker_wav = language, speaker_wav
        synth = getattr(self.tts, "synthesizer", None)
        self.sample_rate = int(getattr(synth, "output_sample_rate", 22050) or 22050)
        self.is_xtts = "xtts" in open(cfg, encoding="utf-8").read().lower()

    def voices(self) -> list[str]:
        return list(getattr(self.tts, "speakers", None) or ([self.speaker_wav] if self.speaker_wav else []))

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        _check_lengths(texts, voices)
        out = []
        for text, voice in zip(texts, voices):
            kw: dict = {"text": text}
            if self.language:
                kw["language"] = self.language
            if self.is_xtts or (voice and os.path.exists(voice)):
                kw["speaker_wav"] = voice or self.speaker_wav
                if not kw["speaker_wav"]:
                    raise TtsError("XTTS needs a reference clip: set voices: [path/to/speaker.wav] or speaker_wav")
            elif voice:
                kw["speaker"] = voice
            out.append(np.asarray(self.tts.tts(**kw), dtype=np.float32))
        return out


# --- piper --------------------------------------------------------------------------------------
class PiperTts:
    """A piper ONNX voice from a local ``.onnx`` file (its ``.onnx.json`` config beside it)."""

    name = "piper"

    def __init__(self, model_path: str, config_path: str | None = None, use_cuda: bool = False):
        if not model_path or not os.path.isfile(model_path):
            raise TtsError(f"piper model_path {model_path!r} is not a file; give the local .onnx voice "
                           f"(with its .onnx.json next to it)")
        config_path = config_path or model_path + ".json"
        if not os.path.isfile(config_path):
            raise TtsError(f"{model_path}: missing config {config_path}; piper voices ship as .onnx + .onnx.json")
        try:
            from piper import PiperVoice  # type: ignore[import-not-found]
        except ImportError as e:
            raise TtsError(f"the piper backend needs the piper-tts package: {TTS_INSTALL} ({e})") from e
        self.voice = PiperVoice.load(model_path, config_path=config_path, use_cuda=use_cuda)
        self.sample_rate = int(self.voice.config.sample_rate)

    def voices(self) -> list[str]:
        n = int(getattr(self.voice.config, "num_speakers", 1) or 1)
        return [str(i) for i in range(n)]

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        _check_lengths(texts, voices)
        out = []
        for text, voice in zip(texts, voices):
            sid = int(voice) if voice not in (None, "") else None
            try:  # piper-tts >= 1.3: synthesize() yields AudioChunk objects
                from piper import SynthesisConfig  # type: ignore[import-not-found]
                chunks = self.voice.synthesize(text, syn_config=SynthesisConfig(speaker_id=sid))
                wav = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
            except ImportError:  # older piper-tts: raw int16 stream
                raw = b"".join(self.voice.synthesize_stream_raw(text, speaker_id=sid))
                wav = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
            out.append(wav)
        return out


BACKENDS = {"espeak": EspeakTts, "coqui": CoquiTts, "piper": PiperTts}


def make_tts(backend: str = "espeak", **params) -> TtsBackend:
    """Build a backend by name; unknown names fail with the list of known ones."""
    if backend not in BACKENDS:
        raise TtsError(f"unknown TTS backend {backend!r}; use one of {sorted(BACKENDS)}")
    return BACKENDS[backend](**params)


# --- voice sampler ------------------------------------------------------------------------------
class VoiceSampler:
    """Seeded, order-independent choice of a voice per item (same id + seed -> same voice).

    ``rates``/``pitches`` (espeak only) add prosodic variants: a sampled voice becomes
    ``en-gb+f3@170,40``.
    """

    def __init__(self, voices: Sequence[str], seed: int = 0, rates: Sequence[int] | None = None,
                 pitches: Sequence[int] | None = None):
        if not voices:
            raise TtsError("the voice pool is empty: list voices in the recipe (tts.voices) or use the backend's")
        self.voices, self.seed = list(voices), int(seed)
        self.rates, self.pitches = list(rates or []), list(pitches or [])

    def _draw(self, key: str, salt: str, n: int) -> int:
        h = hashlib.sha1(f"{self.seed}|{salt}|{key}".encode("utf-8")).digest()
        return int.from_bytes(h[:8], "big") % n

    def pick(self, key: str, role: str = "") -> str:
        v = self.voices[self._draw(key, "voice" + role, len(self.voices))]
        if self.rates or self.pitches:
            r = self.rates[self._draw(key, "rate" + role, len(self.rates))] if self.rates else ""
            p = self.pitches[self._draw(key, "pitch" + role, len(self.pitches))] if self.pitches else ""
            v = f"{v.partition('@')[0]}@{r},{p}"
        return v


def _check_lengths(texts: Sequence[str], voices: Sequence[str]) -> None:
    if len(texts) != len(voices):
        raise TtsError(f"synthesize got {len(texts)} texts but {len(voices)} voices; give one voice per text")


def write_flac(path: str, wav: np.ndarray, sample_rate: int) -> None:
    """Write FLAC atomically (temp file + rename) so a killed worker never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak > 1.0:  # FLAC is integer PCM: scale down rather than clip
        wav = wav / peak
    sf.write(tmp, wav, sample_rate, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)
