"""Padding-exact batched forward shared by the HuBERT-family backends (``hubert``, ``hf-hubert``).

Why our own forward around the library modules: base models (HuBERT-base, mHuBERT-25Hz, wav2vec2-base) put
a GroupNorm over *time* in the first conv layer, so zero-padding a segment in a batch changes its features
(fairseq and transformers both warn about this). For padded batches we run the conv stack with that norm
computed over each item's valid samples only, then the transformer with a key-padding mask, so a segment gets
the same features (to float rounding) alone or in a padded batch while the GPU still sees large batches. A
batch of one item skips the attention mask (measured faster on CPU, where one item per forward is the
default). The 1-channel first conv runs as one GEMM over unfolded frames (~15x faster than oneDNN's conv).
Layers above the requested one are dropped at load (less memory, less compute). Reduced precision is autocast around the encoder; the
GroupNorm statistics stay in fp32.

Layer numbering follows fairseq's ``output_layer`` (1-based: layer 6 = output of the 6th transformer block).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import SR, SpeechTokenizer, buckets, chunk_spans, pick_device, pick_precision, torch_dtype

EDGE_PAD = 40  # samples each side (slamkit): frames = floor(samples / 320)
MAX_CHUNK_SECONDS = 100.0  # textlesslib: encode long inputs in chunks of at most 100 s


def masked_conv_stack(conv_layers, x, lengths, act=None):
    """Run a wav2vec2-style conv feature extractor on a padded batch (B, 1, S) with valid ``lengths`` (samples).

    GroupNorm statistics are taken per item over its valid frames only (sliced, so the reduction is the same
    as for the item alone). Returns (B, C, T) and the valid frame counts.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    lengths = lengths.clone()
    for layer in conv_layers:
        conv = layer.conv
        x = _conv(conv, x)
        k, s = conv.kernel_size[0], conv.stride[0]
        lengths = torch.clamp(torch.div(lengths - k, s, rounding_mode="floor") + 1, min=0)
        norm = getattr(layer, "layer_norm", None)
        if isinstance(norm, nn.GroupNorm):
            x = _masked_group_norm(norm, x, lengths)
        elif norm is not None and type(norm) is nn.LayerNorm:  # transformers: plain LayerNorm over channels
            x = norm(x.transpose(-2, -1)).transpose(-2, -1)
        elif norm is not None:  # torchaudio's LayerNorm transposes itself
            x = norm(x)
        x = layer.activation(x) if hasattr(layer, "activation") else F.gelu(x)
    return x, lengths


def _conv(conv, x):
    """The first layer (1 input channel, kernel 10, stride 5) as frames @ weights: one GEMM instead of a
    1-channel convolution, which oneDNN runs ~15x slower on CPU (same numbers: exact products and sums)."""
    import torch

    if conv.in_channels != 1 or conv.groups != 1 or conv.padding not in ((0,), 0) or conv.dilation != (1,):
        return conv(x)
    k, s = conv.kernel_size[0], conv.stride[0]
    frames = x[:, 0].unfold(-1, k, s).contiguous()  # (B, T, k); contiguous makes the GEMM below fast
    y = torch.matmul(conv.weight[:, 0, :].to(frames.dtype), frames.transpose(1, 2))  # (B, C, T), contiguous
    if conv.bias is not None:
        y = y + conv.bias[:, None]
    return y


def _masked_group_norm(norm, x, lengths):
    """GroupNorm whose statistics cover each item's valid frames only (the library kernel on each slice);
    padded frames are set to 0 (they never reach a valid output frame)."""
    import torch.nn.functional as F

    T = x.shape[-1]
    if x.shape[0] == 1 and int(lengths[0]) >= T:
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    out = x.new_zeros(x.shape)
    for b in range(x.shape[0]):
        n = max(1, min(T, int(lengths[b])))
        out[b: b + 1, :, :n] = F.group_norm(x[b: b + 1, :, :n], norm.num_groups, norm.weight, norm.bias, norm.eps)
    return out


class SslEncoderFeatures(SpeechTokenizer):
    """Shared batching: edge padding, 100 s chunks, length buckets, autocast, valid-frame slicing."""

    dim: int
    hop: int = 320
    receptive: int = 400
    returns_torch = True  # features(as_torch=True) supported

    def __init__(self, device: str, precision: str | None, batch_seconds: float | None):
        self.device = pick_device(device)
        # auto: fp32 until the unit tokenizer (quantized.KMeansTokenizer) has checked the candidate on units;
        # features alone (k-means training) stay fp32 unless a precision is given
        self.precision_requested = precision or "auto"
        self.precision_candidate = pick_precision(precision, self.device)
        self.precision = self.precision_candidate if self.precision_requested != "auto" else "fp32"
        if batch_seconds is None:  # padded length-sorted batches: 30 s on CPU (bf16 GEMMs gain most from
            batch_seconds = 30.0 if self.device == "cpu" else 240.0  # size, bench_tokenize), 240 s on a GPU
        self.batch_seconds = batch_seconds
        self.frame_rate_hz = SR / self.hop
        self.last_padding_share = 0.0

    def num_frames(self, n_samples: int) -> int:
        return max(0, (n_samples + 2 * EDGE_PAD - self.receptive) // self.hop + 1)

    def _conv_features(self, x, lengths=None):
        """The model's conv feature extractor on (B, S) -> (B, C, T), valid frames; ``lengths=None``: all valid."""
        import torch

        if lengths is None:
            lengths = torch.tensor([x.shape[1]] * x.shape[0], device=x.device)
        return masked_conv_stack(self.model.feature_extractor.conv_layers, x.unsqueeze(1), lengths)

    def _forward(self, x, lengths):  # (B, S) float32 on device, (B,) -> (B, T, D), (B,)
        raise NotImplementedError

    def _forward_unpadded(self, x):  # (1, S) -> (1, T, D), (1,)
        raise NotImplementedError

    def features(self, wavs: Sequence[np.ndarray], as_torch: bool = False) -> list:
        """(T_i, D) float32 per waveform (numpy, or device tensors with ``as_torch`` to skip a copy)."""
        import torch

        pieces: list[tuple[int, np.ndarray]] = []  # (owner, chunk)
        max_chunk = int(MAX_CHUNK_SECONDS * SR)
        for i, w in enumerate(wavs):
            for s, e in chunk_spans(len(w), max_chunk, self.hop):
                pieces.append((i, np.pad(np.asarray(w[s:e], dtype=np.float32), EDGE_PAD)))
        out: list = [None] * len(pieces)
        pad_total = real_total = 0
        lens = [len(p) for _, p in pieces]
        with torch.inference_mode():
            for b in buckets(lens, self.batch_seconds):
                x = torch.zeros(len(b.indices), b.max_len)
                for j, i in enumerate(b.indices):
                    x[j, : lens[i]] = torch.from_numpy(pieces[i][1])
                lengths = torch.tensor([lens[i] for i in b.indices])
                pad_total += b.padded
                real_total += int(lengths.sum())
                x = x.to(self.device, non_blocking=True)
                with torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu",
                                    dtype=torch_dtype(self.precision), enabled=self.precision != "fp32"):
                    if len(b.indices) == 1:  # nothing padded: the library's own forward, no masks (faster on CPU)
                        feats, flen = self._forward_unpadded(x)
                    else:
                        feats, flen = self._forward(x, lengths.to(self.device))
                for j, i in enumerate(b.indices):
                    f = feats[j, : int(flen[j])].float()
                    out[i] = f if as_torch else f.cpu().numpy()
        self.last_padding_share = 1.0 - real_total / pad_total if pad_total else 0.0
        per: list[list] = [[] for _ in wavs]
        for (owner, _), f in zip(pieces, out):
            per[owner].append(f)
        cat = (lambda fs: torch.cat(fs)) if as_torch else (lambda fs: np.concatenate(fs))
        return [cat(fs) if fs else (torch.zeros(0, self.dim) if as_torch else np.zeros((0, self.dim), np.float32))
                for fs in per]
