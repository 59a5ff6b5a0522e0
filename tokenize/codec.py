"""Neural codec tokens (``encodec``, ``mimi``) from a LOCAL transformers directory, Q codebooks per frame.

Why: Moshi/VALL-E-style models train on residual-vector-quantized codec tokens rather than HuBERT units.
The first Q codebooks of an RVQ do not depend on how many follow, so we ask the model for the smallest
bandwidth (EnCodec) / number of quantizers (Mimi) that yields Q and keep the first Q. Audio arrives at
16 kHz and is resampled (soxr) to the codec's rate. Items are encoded one at a time: the codec's padding
behaviour at the end of a batch would otherwise change the last frames, and codecs are cheap next to HuBERT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import soxr

from .base import SR, SpeechTokenizer, file_hash, pick_device, pick_precision


class CodecTokenizer(SpeechTokenizer):
    """Shared loading and encoding; a subclass names the transformers model and how to ask it for Q codebooks."""

    needs_kmeans = False
    model_class: ClassVar[str]  # transformers class: EncodecModel, MimiModel

    def __init__(self, checkpoint: str | None = None, num_codebooks: int = 8, device: str = "auto",
                 precision: str | None = "fp32"):
        import torch
        import transformers

        p = Path(checkpoint) if checkpoint else None
        if p is None or not (p / "config.json").exists():
            raise FileNotFoundError(f"{checkpoint}: not a local Hugging Face {self.name} directory "
                                    f"(config.json missing)")
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        model_class = getattr(transformers, self.model_class)
        self.model = model_class.from_pretrained(str(p), local_files_only=True).eval().to(self.device)
        cfg = self.model.config
        self.sr = int(cfg.sampling_rate)
        self.frame_rate_hz = float(cfg.frame_rate)
        self.vocab_size = int(cfg.codebook_size)
        self._check_codebooks(cfg, num_codebooks, p)
        self.num_codebooks = num_codebooks
        self.label = f"{self.name}-q{num_codebooks}-{file_hash(p)[:8]}"
        torch.set_grad_enabled(False)

    def _check_codebooks(self, cfg: Any, num_codebooks: int, path: Path) -> None:
        """Raise when the model cannot give ``num_codebooks``; remember how to ask for them."""
        raise NotImplementedError

    def _codes(self, t: Any) -> Any:
        """(Q', T) codes of one (1, 1, S) waveform tensor at the codec's rate, Q' >= num_codebooks."""
        raise NotImplementedError

    def num_frames(self, n_samples_16k: int) -> int:
        return int(np.ceil(n_samples_16k / SR * self.frame_rate_hz))

    def encode(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(Q, T) int32 per waveform."""
        import torch

        out = []
        with torch.inference_mode():
            for w in wavs:
                x = soxr.resample(np.asarray(w, np.float32), SR, self.sr).astype(np.float32) if self.sr != SR else w
                t = torch.from_numpy(np.ascontiguousarray(x))[None, None].to(self.device)
                out.append(self._codes(t)[: self.num_codebooks].to(torch.int32).cpu().numpy())
        return out


class EncodecTokenizer(CodecTokenizer):
    """EnCodec codec tokens (no k-means): the smallest bandwidth that gives Q codebooks."""

    name = "encodec"
    model_class = "EncodecModel"

    def _check_codebooks(self, cfg: Any, num_codebooks: int, path: Path) -> None:
        per_cb = np.log2(cfg.codebook_size) * cfg.frame_rate / 1000.0  # kbps per codebook
        bws = sorted(float(b) for b in cfg.target_bandwidths)
        ok = [b for b in bws if int(round(b / per_cb)) >= num_codebooks]
        if not ok:
            raise ValueError(f"num_codebooks={num_codebooks}: {path} offers at most "
                             f"{int(round(bws[-1] / per_cb))} codebooks (bandwidths {bws} kbps)")
        self.bandwidth = ok[0]

    def _codes(self, t: Any) -> Any:
        import torch

        codes = self.model.encode(t, bandwidth=self.bandwidth).audio_codes  # (chunks, B, Q, T)
        return codes[0, 0] if codes.shape[0] == 1 else torch.cat(list(codes[:, 0]), dim=-1)


class MimiTokenizer(CodecTokenizer):
    """Mimi codec tokens (no k-means): the first Q of its quantizers."""

    name = "mimi"
    model_class = "MimiModel"

    def _check_codebooks(self, cfg: Any, num_codebooks: int, path: Path) -> None:
        if num_codebooks > cfg.num_quantizers:
            raise ValueError(f"num_codebooks={num_codebooks}: {path} has {cfg.num_quantizers} quantizers")
        self.bandwidth = None

    def _codes(self, t: Any) -> Any:
        return self.model.encode(t, num_quantizers=self.num_codebooks).audio_codes[0]  # (Q, T)
