"""The ``piper`` TTS backend: a piper ONNX voice from a local file (optional extra ``piper-tts``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .tts import TTS_INSTALL, TtsBackend, TtsError, check_lengths


class PiperTts(TtsBackend):
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
        check_lengths(texts, voices)
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
