"""Neural codec tokens (``encodec``, ``mimi``) from a LOCAL transformers directory, Q codebooks per frame.

Why: Moshi/VALL-E-style models train on residual-vector-quantized codec tokens rather than HuBERT units.
The first Q codebooks of an RVQ do not depend on how many follow, so we ask the model for the smallest
bandwidth (EnCodec) / number of quantizers (Mimi) that yields Q and keep the first Q. Audio arrives at
16 kHz mono; it is resampled (soxr) to the codec's rate and copied to every channel the config declares
(a stereo 48 kHz EnCodec gets the same signal on both channels).

Batching: items are sorted by length and encoded in padded batches with a ``padding_mask``. For causal codecs
(EnCodec 24 kHz, Mimi: causal convolutions, causal attention/LSTM) every item is first zero-padded to a whole
frame (a multiple of the hop), so a frame never sees anything past its own item and an item gets the same codes
alone or in a padded batch. Non-causal or normalising configs (EnCodec 48 kHz) are batched only with items of
the same length (still exact). The encoder runs in the tokenizer's precision (autocast; ``auto`` is checked on
a calibration batch, ``precision.py``); the RVQ nearest-codeword search always runs in fp32.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import soxr

from .base import SR, SpeechTokenizer, buckets, file_hash, pick_device, pick_precision, torch_dtype
from .precision import calibration_batch, decide


class CodecTokenizer(SpeechTokenizer):
    """Shared loading and batched encoding; a subclass names the transformers model and how to ask it for Q."""

    needs_kmeans = False
    model_class: ClassVar[str]  # transformers class: EncodecModel, MimiModel

    def __init__(self, checkpoint: str | None = None, num_codebooks: int = 8, device: str = "auto",
                 precision: str | None = None, batch_seconds: float | None = None):
        import torch
        import transformers

        p = Path(checkpoint) if checkpoint else None
        if p is None or not (p / "config.json").exists():
            raise FileNotFoundError(f"{checkpoint}: not a local Hugging Face {self.name} directory "
                                    f"(config.json missing)")
        self.device = pick_device(device)
        model_class = getattr(transformers, self.model_class)
        self.model = model_class.from_pretrained(str(p), local_files_only=True).eval().to(self.device)
        _fp32_quantizer(self.model.quantizer)
        cfg = self.model.config
        self.sr = int(cfg.sampling_rate)
        self.frame_rate_hz = float(cfg.frame_rate)
        self.hop = int(round(self.sr / self.frame_rate_hz))  # codec samples per frame
        self.channels = int(getattr(cfg, "audio_channels", 1) or 1)
        self.vocab_size = int(cfg.codebook_size)
        self._check_codebooks(cfg, num_codebooks, p)
        self.num_codebooks = num_codebooks
        # padded batches are exact only when no frame looks right of its item (causal) and nothing is normalised
        self.pad_exact = bool(getattr(cfg, "use_causal_conv", False)) and not getattr(cfg, "normalize", False) \
            and getattr(cfg, "chunk_length", None) is None
        self.batch_seconds = float(batch_seconds if batch_seconds is not None else 60.0)
        self.label = f"{self.name}-q{num_codebooks}-{file_hash(p)[:8]}"
        self.precision = decide(precision, pick_precision(precision, self.device),
                                lambda q: setattr(self, "_prec", q), self.encode, self.label,
                                batch=calibration_batch()[:2])  # 2.5 s: codecs give Q codes per frame
        self.label += self.precision.tag()

    def _check_codebooks(self, cfg: Any, num_codebooks: int, path: Path) -> None:
        """Raise when the model cannot give ``num_codebooks``; remember how to ask for them."""
        raise NotImplementedError

    def _codes(self, x: Any, mask: Any) -> Any:
        """(B, Q', T) codes of a (B, C, S) batch at the codec's rate with its padding mask, Q' >= num_codebooks."""
        raise NotImplementedError

    def num_frames(self, n_samples_16k: int) -> int:
        return int(np.ceil(n_samples_16k / SR * self.frame_rate_hz))

    def _prepare(self, w: np.ndarray) -> tuple[np.ndarray, int]:
        """The waveform at the codec's rate (zero-padded to whole frames for causal codecs), and its frames."""
        x = np.asarray(w, np.float32)
        if self.sr != SR:
            x = soxr.resample(x, SR, self.sr).astype(np.float32)
        frames = -(-len(x) // self.hop)
        if self.pad_exact:
            x = np.pad(x, (0, frames * self.hop - len(x)))
        return x, frames

    def _groups(self, lens: list[int]) -> list[list[int]]:
        if self.pad_exact:
            return [b.indices for b in buckets(lens, self.batch_seconds, sr=self.sr)]
        same: dict[int, list[int]] = {}
        for i, n in enumerate(lens):
            same.setdefault(n, []).append(i)
        per = max(1, int(self.batch_seconds * self.sr) // max(1, max(lens, default=1)))
        return [g[s: s + per] for g in same.values() for s in range(0, len(g), per)]

    def encode(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(T,) int32 per waveform for one codebook, (Q, T) for Q > 1."""
        import torch

        prepared = [self._prepare(w) for w in wavs]
        lens = [len(x) for x, _ in prepared]
        out: list[np.ndarray] = [np.zeros((self.num_codebooks, 0), np.int32)] * len(wavs)
        prec = getattr(self, "_prec", "fp32")
        dev_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode():
            for idx in self._groups(lens):
                if not idx:
                    continue
                n = max(lens[i] for i in idx)
                x = torch.zeros(len(idx), self.channels, n)
                mask = torch.zeros(len(idx), self.channels, n, dtype=torch.bool)
                for j, i in enumerate(idx):
                    x[j, :, : lens[i]] = torch.from_numpy(prepared[i][0])
                    mask[j, :, : lens[i]] = True
                with torch.autocast(device_type=dev_type, dtype=torch_dtype(prec), enabled=prec != "fp32"):
                    codes = self._codes(x.to(self.device), mask.to(self.device))
                codes = codes[:, : self.num_codebooks].to(torch.int32).cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = np.ascontiguousarray(codes[j, :, : prepared[i][1]])
        return [c[0] if self.num_codebooks == 1 else c for c in out]


def _fp32_quantizer(quantizer: Any) -> None:
    """Run the RVQ codeword search in fp32 whatever the encoder's autocast: in bf16 the residuals of later
    codebooks drift and nearest-codeword ties flip, changing codes for no speed gain (it is a small GEMM)."""
    import torch

    inner = quantizer.encode

    def encode(embeddings, *args, **kwargs):
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return inner(embeddings.float(), *args, **kwargs)

    quantizer.encode = encode


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

    def _codes(self, x: Any, mask: Any) -> Any:
        import torch

        enc = self.model.encode(x, padding_mask=mask, bandwidth=self.bandwidth, return_dict=True)
        codes = enc.audio_codes  # (chunks, B, Q, T); 48 kHz models encode 1 s chunks, the last one zero-padded
        codes = codes[0] if codes.shape[0] == 1 else torch.cat(list(codes), dim=-1)
        pad = int(enc.last_frame_pad_length or 0)
        return codes[..., : codes.shape[-1] - pad] if pad else codes


class MimiTokenizer(CodecTokenizer):
    """Mimi codec tokens (no k-means): the first Q of its quantizers."""

    name = "mimi"
    model_class = "MimiModel"

    def _check_codebooks(self, cfg: Any, num_codebooks: int, path: Path) -> None:
        if num_codebooks > cfg.num_quantizers:
            raise ValueError(f"num_codebooks={num_codebooks}: {path} has {cfg.num_quantizers} quantizers")
        self.bandwidth = None

    def _codes(self, x: Any, mask: Any) -> Any:
        return self.model.encode(x, padding_mask=mask, num_quantizers=self.num_codebooks,
                                 return_dict=True).audio_codes  # (B, Q, T)
