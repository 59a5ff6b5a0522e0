"""Nearest-centroid assignment as one batched matmul + argmin on the model's device.

Why not a per-frame loop or sklearn's ``predict``: assignment runs on every frame of every hour; as
``argmin_k (|c_k|^2 - 2 x.c_k)`` it is a single GEMM per batch (|x|^2 does not change the argmin). On CPU we
compute in float64: it costs little next to the encoder and makes a frame's unit independent of which other
frames share the GEMM (so a segment gets the same units alone or in a padded batch).
"""
from __future__ import annotations

import numpy as np


class Assigner:
    """Holds the centroids on the device once; ``__call__`` maps (N, D) features to (N,) int32 units."""

    def __init__(self, centroids: np.ndarray, device: str = "cpu", chunk_frames: int = 65536,
                 standardize: tuple[np.ndarray, np.ndarray] | None = None):
        """``standardize``: ``(mean, std)`` per dimension when the centroids were fitted on z-scored features
        (``kmeans.train(standardize=True)``); features are z-scored the same way before the argmin."""
        import torch

        if centroids.ndim != 2:
            raise ValueError(f"centroids must be (k, dim), got shape {centroids.shape}")
        self.device = device
        self.dtype = torch.float64 if device == "cpu" else torch.float32
        self.c = torch.as_tensor(np.asarray(centroids), dtype=self.dtype, device=device)
        self.c_sq = (self.c * self.c).sum(1)
        self.k, self.dim = centroids.shape
        self.chunk = chunk_frames
        self.mean = self.std = None
        if standardize is not None:
            mean, std = (torch.as_tensor(np.asarray(a), dtype=self.dtype, device=device) for a in standardize)
            if mean.shape != (self.dim,) or std.shape != (self.dim,):
                raise ValueError(f"standardize mean/std have shapes {tuple(mean.shape)}/{tuple(std.shape)}, "
                                 f"centroids have dim {self.dim}; the k-means JSON does not match its .npy")
            self.mean, self.std = mean, std

    def __call__(self, feats) -> np.ndarray:
        """``feats``: numpy array or torch tensor (N, D) on any device/dtype."""
        import torch

        x = torch.as_tensor(feats)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features have shape {tuple(x.shape)} but the k-means centroids have dim {self.dim}; "
                             f"use the k-means file trained for this feature extractor/layer")
        out = []
        with torch.no_grad():
            for s in range(0, x.shape[0], self.chunk):
                xb = x[s: s + self.chunk].to(self.device, self.dtype)
                if self.mean is not None:
                    xb = (xb - self.mean) / self.std
                d = torch.addmm(self.c_sq, xb, self.c.T, beta=1.0, alpha=-2.0)
                out.append(d.argmin(1).to(torch.int32).cpu())
        return (torch.cat(out) if out else torch.zeros(0, dtype=torch.int32)).numpy()

    def split(self, feats_list) -> list[np.ndarray]:
        """Assign many sequences in one GEMM and split the result back per sequence."""
        import torch

        lens = [int(f.shape[0]) for f in feats_list]
        if not lens:
            return []
        allf = torch.cat([torch.as_tensor(f).to(self.device) for f in feats_list]) if sum(lens) else None
        units = self(allf) if allf is not None else np.zeros(0, np.int32)
        return list(np.split(units, np.cumsum(lens)[:-1]))
