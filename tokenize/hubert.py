"""``hubert``: a torchaudio HuBERT/wav2vec2/WavLM architecture + a LOCAL state_dict (.pt/.pth/.safetensors).

Why torchaudio's modules with weights-only loading: no code runs when a checkpoint is read, and the model
classes need no network. The batched forward that keeps padded batches exact is ``ssl_encoder``'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import file_hash
from .ssl_encoder import SslEncoderFeatures

TORCHAUDIO_ARCHS = ("hubert_base", "hubert_large", "hubert_xlarge", "wav2vec2_base", "wav2vec2_large",
                    "wavlm_base", "wavlm_large")


class TorchaudioHubert(SslEncoderFeatures):
    """torchaudio HuBERT/wav2vec2/WavLM architecture (``hubert_base()``, ...) + a local state_dict.

    ``checkpoint=None`` keeps random weights (tests and benchmarks only; the label says ``random``).
    """

    name = "hubert"

    @classmethod
    def from_params(cls, allow_random: bool = False, **params: Any) -> TorchaudioHubert:
        """Recipes must name a checkpoint: random weights would make meaningless units without any error."""
        if not params.get("checkpoint") and not allow_random:
            raise ValueError("tokenizer=hubert needs checkpoint=<local .pt/.pth/.safetensors state_dict> "
                             "(allow_random=true only for tests and benchmarks)")
        return super().from_params(**params)

    def __init__(self, checkpoint: str | None = None, layer: int = 6, arch: str = "hubert_base",
                 device: str = "auto", precision: str | None = None, batch_seconds: float | None = None,
                 seed: int = 0):
        import torch
        import torchaudio.models as tam

        super().__init__(device, precision, batch_seconds)
        if arch not in TORCHAUDIO_ARCHS:
            raise ValueError(f"arch={arch!r}: choose one of {', '.join(TORCHAUDIO_ARCHS)}")
        torch.manual_seed(seed)
        model = getattr(tam, arch)()
        sha = "random"
        if checkpoint:
            model.load_state_dict(load_state_dict(checkpoint))
            sha = file_hash(checkpoint)
        n_layers = len(model.encoder.transformer.layers)
        if not 1 <= layer <= n_layers:
            raise ValueError(f"layer={layer}: {arch} has transformer layers 1..{n_layers}")
        model.encoder.transformer.layers = model.encoder.transformer.layers[:layer]
        self.model = model.eval().to(self.device)
        self.layer, self.arch = layer, arch
        self.dim = model.encoder.feature_projection.projection.out_features
        self.label = f"{arch}-L{layer}-{sha[:8]}"
        self.meta = {"features": self.label, "layer": layer, "arch": arch, "checkpoint": checkpoint,
                     "checkpoint_sha1": sha}

    def _forward(self, x, lengths):
        feats, flen = self._conv_features(x, lengths)
        outs = self.model.encoder.extract_features(feats.transpose(1, 2), flen, num_layers=self.layer)
        return outs[-1], flen

    def _forward_unpadded(self, x):
        feats, flen = self._conv_features(x)
        outs = self.model.encoder.extract_features(feats.transpose(1, 2), None, num_layers=self.layer)
        return outs[-1], flen


def load_state_dict(path: str) -> dict:
    """A torchaudio-format state_dict from .safetensors or .pt/.pth (weights only: no code runs on load)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: checkpoint not found; give a local path (nothing is downloaded)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{p}: not a weights-only torch checkpoint ({e}). fairseq .pt files carry pickled config "
                         f"objects: convert the model to a Hugging Face directory (tokenizer=hf-hubert) or to a "
                         f"torchaudio state_dict first") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        raise ValueError(f"{p}: looks like a fairseq checkpoint; convert it with torchaudio's import_fairseq_model "
                         f"or use its Hugging Face conversion with tokenizer=hf-hubert")
    return sd
