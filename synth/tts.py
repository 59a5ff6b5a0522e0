"""The TTS backend interface, ``synthesize(texts, voices) -> waveforms``, the factory by name, and the pool.

Why one interface: recipes pick an engine by name (``piper`` the default, the bundled neural voice or any
local ``.onnx`` voice; ``espeak`` offline formant voices for variety; ``coqui`` VITS/XTTS from a local
model folder; one module each, found through ``TTS_BACKENDS`` in manifests/registry.py) and everything
downstream (FLAC writing, gates, export) sees float32 mono arrays.

Voice strings are ``[backend:]name[@key=value,...]``: the prefix routes a voice to another engine than
the stage's own (``espeak:en-gb+f3`` in a Piper pool), the ``@`` part carries per-row variation
(espeak ``rate``/``pitch``, also ``@160,50``; piper ``length_scale``/``noise_scale``/``noise_w``). Names
are engine-specific: espeak ``en-us+f3``; piper the voice's name, a speaker, or a ``.onnx`` path; coqui a
speaker name or a reference clip path (XTTS cloning).

Why :class:`TtsPool` resamples: engines speak at their own rates (espeak and Piper medium 22050 Hz,
XTTS 24000 Hz); a mixed pool would otherwise write clips at several rates into one chat dataset.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..manifests.registry import TTS_BACKENDS
from .backends import build

TTS_INSTALL = "pip install 'slmfactory[tts]'"


class TtsError(RuntimeError):
    """A TTS backend that cannot run, with the fix."""


class TtsBackend:
    """Family base of the TTS backends: subclasses set ``name`` (what recipes write) and ``sample_rate``.

    ``variant_keys`` names the per-row settings a voice string may carry after ``@`` (what the voice
    sampler's ``variation`` draws for this engine).
    """

    name: str
    sample_rate: int
    variant_keys: tuple[str, ...] = ()

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        """One float32 mono waveform at ``sample_rate`` per (text, voice)."""
        raise NotImplementedError

    def voices(self) -> list[str]:
        """The voices this backend offers (what the voice sampler draws from by default)."""
        raise NotImplementedError


def make_tts(backend: str = "piper", **params: Any) -> TtsBackend:
    """Build a backend by name; unknown names fail with the closest match and the list of known ones."""
    return build(TTS_BACKENDS, backend, TtsError, params)


def check_lengths(texts: Sequence[str], voices: Sequence[str]) -> None:
    if len(texts) != len(voices):
        raise TtsError(f"synthesize got {len(texts)} texts but {len(voices)} voices; give one voice per text")


def split_variant(spec: str, keys: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``'name@k=v,k2=v2'`` (or positional ``'name@v,v2'`` in ``keys`` order) -> (name, {key: value})."""
    name, _, rest = (spec or "").partition("@")
    out: dict[str, str] = {}
    for i, part in enumerate(rest.split(",") if rest else []):
        key, eq, value = part.partition("=")
        if not eq:
            key, value = (keys[i] if i < len(keys) else f"#{i}"), part
        if key not in keys:
            raise TtsError(f"voice {spec!r}: unknown setting {key!r}; this engine takes {', '.join(keys) or 'none'} "
                           f"(e.g. {name}@{keys[0] if keys else 'x'}=...)")
        if value.strip():
            out[key.strip()] = value.strip()
    return name, out


class TtsPool:
    """The engines a voice pool names, built once each, and every clip resampled to one ``sample_rate``.

    A voice ``espeak:en-gb+f3`` goes to the ``espeak`` engine, an unprefixed one to ``backend``;
    ``params`` (``{backend: {...}}``) configure each engine. ``sample_rate=None`` keeps the default
    engine's own rate.
    """

    def __init__(self, backend: str = "piper", params: dict[str, dict[str, Any]] | None = None,
                 sample_rate: int | None = 16000):
        self.backend, self.params = backend, dict(params or {})
        self.engines: dict[str, TtsBackend] = {}
        self.default = self.engine(backend)
        self.sample_rate = int(sample_rate or self.default.sample_rate)

    def engine(self, name: str) -> TtsBackend:
        if name not in self.engines:
            self.engines[name] = make_tts(name, **dict(self.params.get(name) or {}))
        return self.engines[name]

    def route(self, voice: str) -> tuple[str, str]:
        """(engine name, voice for that engine): a known backend name before ``:`` picks the engine."""
        head, sep, tail = (voice or "").partition(":")
        if sep and head in TTS_BACKENDS.names():
            return head, tail
        return self.backend, voice

    def voices(self) -> list[str]:
        return self.default.voices()

    def variant_keys(self, voice: str) -> tuple[str, ...]:
        return self.engine(self.route(voice)[0]).variant_keys

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        """One float32 waveform at ``sample_rate`` per (text, voice), engines batched, input order kept."""
        import soxr

        check_lengths(texts, voices)
        groups: dict[str, list[int]] = {}
        routed = [self.route(v) for v in voices]
        for i, (eng, _) in enumerate(routed):
            groups.setdefault(eng, []).append(i)
        out: list[np.ndarray | None] = [None] * len(texts)
        for eng, idx in groups.items():
            tts = self.engine(eng)
            wavs = tts.synthesize([texts[i] for i in idx], [routed[i][1] for i in idx])
            for i, wav in zip(idx, wavs):
                wav = np.asarray(wav, dtype=np.float32)
                if tts.sample_rate != self.sample_rate and wav.size:
                    wav = soxr.resample(wav, tts.sample_rate, self.sample_rate, quality="HQ").astype(np.float32)
                out[i] = wav
        return [w if w is not None else np.zeros(0, np.float32) for w in out]
