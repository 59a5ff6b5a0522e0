"""Weight-free spectral features (log-mel or MFCC, optional deltas and mean normalisation): the offline default.

Why: the demo and CI must tokenize without any checkpoint. Frames use the HuBERT grid (25 ms window, 20 ms
hop, 40 samples of edge padding), so a spectral unit stream has the same rate and length as HuBERT-base units
and everything downstream (dedup, interleaving, packing) is exercised identically. Each utterance is computed
on its own: the STFT is cheap and this makes features independent of batching by construction.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import SR, SpeechTokenizer

EDGE_PAD = 40  # samples each side (slamkit): frames = floor(samples / hop)


class SpectralFeatures(SpeechTokenizer):
    """Weight-free MFCC or log-mel frame features on the HuBERT 50 Hz grid (the offline default, needs k-means)."""

    name = "spectral"

    def __init__(self, kind: str = "mfcc", n_mels: int = 40, n_mfcc: int = 13, deltas: bool = True,
                 cmn: bool = True, hop: int = 320, win: int = 400):
        import torch
        import torchaudio.functional as AF

        if kind not in ("mfcc", "logmel"):
            raise ValueError(f"spectral kind={kind!r}: choose mfcc or logmel")
        self.kind, self.deltas, self.cmn, self.hop, self.win = kind, deltas, cmn, hop, win
        self.window = torch.hann_window(win, dtype=torch.float64)
        self.fb = AF.melscale_fbanks(win // 2 + 1, 20.0, SR / 2, n_mels, SR, norm="slaney", mel_scale="slaney").double()
        self.dct = AF.create_dct(n_mfcc, n_mels, norm="ortho").double() if kind == "mfcc" else None
        base = n_mfcc if kind == "mfcc" else n_mels
        self.dim = base * (3 if deltas else 1)
        self.frame_rate_hz = SR / hop
        self.label = f"{kind}{base}{'+d' if deltas else ''}{'+cmn' if cmn else ''}"
        self.meta = {"features": self.label, "layer": None, "checkpoint_sha1": None}

    def num_frames(self, n_samples: int) -> int:
        return max(0, (n_samples + 2 * EDGE_PAD - self.win) // self.hop + 1)

    def _one(self, wav: np.ndarray) -> np.ndarray:
        import torch
        import torchaudio.functional as AF

        x = torch.from_numpy(np.pad(np.asarray(wav, dtype=np.float64), EDGE_PAD))
        if x.numel() < self.win:
            return np.zeros((0, self.dim), np.float32)
        frames = x.unfold(0, self.win, self.hop) * self.window  # (T, win): frame-exact, no centering
        power = torch.fft.rfft(frames).abs().pow(2)
        f = torch.log(power @ self.fb + 1e-6)
        if self.dct is not None:
            f = f @ self.dct
        if self.cmn:
            f = f - f.mean(0, keepdim=True)
        if self.deltas:
            d1 = AF.compute_deltas(f.T.unsqueeze(0)).squeeze(0).T
            d2 = AF.compute_deltas(d1.T.unsqueeze(0)).squeeze(0).T
            f = torch.cat([f, d1, d2], 1)
        return f.float().numpy()

    def features(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._one(w) for w in wavs]
