"""``whisper-encoder``: frame features from a Whisper encoder (CTranslate2): real weights that ship offline.

Why: no HuBERT/wav2vec2 weights can be had offline, but a Whisper model can (the bundled tiny.en, MIT, the one
the ``asr`` stage uses). Its encoder was trained to make speech readable as text, so its frames keep words
apart across voices where MFCCs do not; the price is that they are lexical: a non-word comes out near the word
it sounds like (sentence-level benchmarks gain, word-vs-non-word pairs fall to chance; both measured in
docs/tokenize.md). Published cousins: WhisperSpeech's semantic tokens and CosyVoice's S3 tokens are quantized
ASR-encoder frames.

How: CTranslate2 returns the last encoder layer only (384-dim for tiny). Whisper's mel hop is 10 ms and its
second conv has stride 2: 50 Hz, the HuBERT-base rate. Each utterance is encoded alone and unpadded (CT2
accepts fewer than 3000 mel frames; positions start at 0), so features never depend on the batch; audio
longer than 29.98 s is encoded in pieces of 1500 encoder frames. One intra-op thread by default: Ray runs one
worker per core, and a fixed thread count keeps float sums in the same order (identical bytes on resume).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..stages.asr_faster_whisper import load_model, resolve_model_path
from .base import SR, SpeechTokenizer, file_hash

HOP = 160  # Whisper's mel hop (10 ms); the encoder halves the rate
MAX_SAMPLES = 1499 * 2 * HOP  # 29.98 s: 2999 mel frames -> 1500 encoder positions (CT2 refuses 3001 mel frames)


class WhisperEncoderFeatures(SpeechTokenizer):
    """An encoder layer of a local CTranslate2 Whisper model (unset = the bundled tiny.en), 50 Hz frames.

    ``layer`` unset (or the last): CT2's own encoder, final LayerNorm included. An inner layer (1-based):
    ``whisper_layers.WhisperEncoder`` built from the same ``model.bin`` (CT2 returns only the last layer)."""

    name = "whisper-encoder"

    def __init__(self, checkpoint: str | None = None, layer: int | None = None, device: str = "cpu",
                 compute_type: str = "float32", threads: int = 1):
        path, model_name = resolve_model_path(checkpoint)
        self.frame_rate_hz = SR / (2 * HOP)
        self.inner = None
        if layer is not None:
            from .whisper_layers import WhisperEncoder, read_ct2

            torch_encoder = WhisperEncoder(read_ct2(Path(path) / "model.bin"))
            if not 1 <= int(layer) <= torch_encoder.n_layers:
                n = torch_encoder.n_layers
                raise ValueError(f"layer={layer}: {model_name} has encoder layers 1..{n}; pass layer=1..{n} (or "
                                 f"leave it unset for the last; tiny.en's layer 3 keeps more phone detail, "
                                 f"docs/tokenize.md)")
            if int(layer) < torch_encoder.n_layers:
                self.inner, layer = torch_encoder, int(layer)
        if self.inner is None:  # the last layer: CT2's own encoder (shared with the asr stage's model cache)
            import ctranslate2

            if device == "auto":
                device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
            self.whisper = load_model(path, device, compute_type, int(threads))
            self.mel = self.whisper.feature_extractor
        else:  # an inner layer needs only the log-mel front end, not a second copy of the model in CT2
            from faster_whisper.feature_extractor import FeatureExtractor

            self.mel = FeatureExtractor(feature_size=self.inner.n_mels)
        self.layer = layer if self.inner is not None else None
        self.dim = int(self._encode(np.zeros(SR, np.float32)).shape[1])
        sha = file_hash(path)
        kind = f"L{layer}" if self.inner is not None else compute_type
        self.label = f"{model_name}-enc-{kind}-{sha[:8]}"
        self.meta = {"features": self.label, "layer": self.layer or "encoder-last", "checkpoint": path,
                     "checkpoint_sha1": sha, "license": "MIT (OpenAI Whisper weights)"}

    def num_frames(self, n_samples: int) -> int:
        """Encoder frames for ``n_samples`` at 16 kHz: mel frames ``n // 160 + 1``, halved (rounded up) by the
        stride-2 conv; each piece of ``MAX_SAMPLES`` counted on its own."""
        pieces = [min(MAX_SAMPLES, n_samples - s) for s in range(0, n_samples, MAX_SAMPLES)] or [0]
        return sum((p // HOP + 2) // 2 for p in pieces if p > 0)

    def _encode(self, wav: np.ndarray) -> np.ndarray:
        import ctranslate2

        mel = self.mel(np.asarray(wav, np.float32))  # (n_mels, n // 160 + 1), Whisper's own log-mel scaling
        if self.inner is not None:
            return self.inner.forward(mel, self.layer)
        mel = np.ascontiguousarray(mel[None], dtype=np.float32)
        out = self.whisper.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True)
        return np.asarray(out, dtype=np.float32)[0]

    def features(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for w in wavs:
            w = np.asarray(w, np.float32)
            parts = [self._encode(w[s:s + MAX_SAMPLES]) for s in range(0, len(w), MAX_SAMPLES) if len(w) - s > 0]
            out.append(np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32))
        return out
