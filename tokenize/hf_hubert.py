"""``hf-hubert``: a transformers HuBERT/wav2vec2 model from a LOCAL directory (mHuBERT-25Hz, SpeechGPT's, ...).

Why beside ``hubert``: published multilingual and 25 Hz checkpoints (TWIST, SpiRit-LM, SpeechGPT) ship as
Hugging Face directories; their conv strides set the frame rate. The batched forward is ``ssl_encoder``'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import SR, file_hash
from .ssl_encoder import EDGE_PAD, SslEncoderFeatures


class HFHubert(SslEncoderFeatures):
    """A transformers HuBERT/wav2vec2 checkpoint from a local directory (e.g. mHuBERT-25Hz, layer 11).

    The frame rate comes from the config's conv strides (320 -> 50 Hz, 640 -> 25 Hz).
    """

    name = "hf-hubert"

    @classmethod
    def from_params(cls, trust_remote_code: bool = False, **params: Any) -> HFHubert:
        """The checkpoint directory is required; ``trust_remote_code`` is dropped because a recipe is data and
        must not be able to run Python shipped in a model folder (construct ``HFHubert`` directly for that)."""
        if not params.get("checkpoint"):
            raise ValueError("tokenizer=hf-hubert needs checkpoint=<local Hugging Face model directory>")
        return super().from_params(**params)

    def __init__(self, checkpoint: str, layer: int = 6, device: str = "auto", precision: str | None = None,
                 batch_seconds: float | None = None, trust_remote_code: bool = False):
        import torch.nn as nn
        from transformers import AutoModel

        super().__init__(device, precision, batch_seconds)
        p = Path(checkpoint)
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p}: not a local Hugging Face model directory (config.json missing); "
                                    f"download it once with `huggingface-cli download ... --local-dir {p}`")
        model = AutoModel.from_pretrained(str(p), local_files_only=True, trust_remote_code=trust_remote_code)
        for attr in ("feature_extractor", "feature_projection", "encoder"):
            if not hasattr(model, attr):
                raise ValueError(f"{p}: {type(model).__name__} is not a HuBERT/wav2vec2-style model (no {attr})")
        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise ValueError(f"layer={layer}: {p} has transformer layers 1..{n_layers}")
        model.encoder.layers = model.encoder.layers[:layer]
        if getattr(model.config, "do_stable_layer_norm", False) and layer < n_layers:
            model.encoder.layer_norm = nn.Identity()  # fairseq output_layer: no final norm for inner layers
        cfg = model.config
        self.hop = int(np.prod(cfg.conv_stride))
        self.receptive = _receptive_field(cfg.conv_kernel, cfg.conv_stride)
        self.frame_rate_hz = SR / self.hop
        self.model = model.eval().to(self.device)
        self.layer, self.dim = layer, cfg.hidden_size
        sha = file_hash(p)
        self.label = f"hf-{cfg.model_type}-L{layer}-{sha[:8]}"
        self.meta = {"features": self.label, "layer": layer, "checkpoint": str(p), "checkpoint_sha1": sha}

    def num_frames(self, n_samples: int) -> int:
        n = n_samples + 2 * EDGE_PAD
        for k, s in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            n = max(0, (n - k) // s + 1)
        return n

    def _projected(self, x, lengths=None):
        feats, flen = self._conv_features(x, lengths)
        h = self.model.feature_projection(feats.transpose(1, 2))
        if isinstance(h, tuple):  # wav2vec2 returns (hidden, normed extract features)
            h = h[0]
        return h, flen

    def _forward(self, x, lengths):
        import torch

        h, flen = self._projected(x, lengths)
        mask = torch.arange(h.shape[1], device=h.device)[None, :] < flen[:, None]
        out = self.model.encoder(h, attention_mask=mask)
        return out[0], flen

    def _forward_unpadded(self, x):
        h, flen = self._projected(x)
        return self.model.encoder(h)[0], flen


def _receptive_field(kernels, strides) -> int:
    r, jump = 1, 1
    for k, s in zip(kernels, strides):
        r += (k - 1) * jump
        jump *= s
    return r
