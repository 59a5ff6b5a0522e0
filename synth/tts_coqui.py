"""The ``coqui`` TTS backend: VITS or XTTS from a local model folder (optional extra ``coqui-tts``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .tts import TTS_INSTALL, TtsBackend, TtsError, check_lengths


class CoquiTts(TtsBackend):
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
        check_lengths(texts, voices)
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
