"""Whisper's encoder in torch, built from a CTranslate2 ``model.bin``, so any layer can be read (CT2 gives only
the last one).

Why: the last encoder layer is trained to feed the text decoder and its k-means units are lexical (a non-word
lands near the word it sounds like, docs/tokenize.md); the inner layers keep more of the sound. Reading the
file is plain data (a versioned list of named little-endian arrays; no code runs), and the module's last
layer + final norm is checked against CT2's own ``encode`` in the tests, so the two cannot drift apart.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CT2 DataType ids (no bf16 here)


def read_ct2(path: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file (format version 6) whose names start with ``prefix``."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        def string() -> str:
            return f.read(struct.unpack("<H", f.read(2))[0]).decode().rstrip("\x00")

        if (version := struct.unpack("<I", f.read(4))[0]) != 6:
            raise ValueError(f"{path}: CTranslate2 model format {version}; this reader knows version 6 (CT2 >= 3)")
        string(), f.read(4)  # spec name, spec revision
        for _ in range(struct.unpack("<I", f.read(4))[0]):
            name, rank = string(), f.read(1)[0]
            shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
            dtype, nbytes = f.read(1)[0], struct.unpack("<I", f.read(4))[0]
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            if dtype not in DTYPES:
                raise ValueError(f"{path}: {name} has CT2 dtype {dtype}; convert the model with --quantization float32")
            out[name[len(prefix):]] = np.frombuffer(f.read(nbytes), DTYPES[dtype]).reshape(shape).copy()
    return out


class WhisperEncoder:
    """Conv stem, sinusoidal positions, pre-norm transformer layers; ``forward(mel, layer)`` stops after
    ``layer`` (1-based); the final LayerNorm is applied only when ``layer`` is the last, as in Whisper."""

    def __init__(self, weights: dict[str, np.ndarray]):
        import torch

        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if v.dtype != np.int16}
        self.heads = int(weights["num_heads"])
        self.n_mels = int(weights["conv1/weight"].shape[1])  # the log-mel bins the model was trained on
        self.n_layers = 1 + max(int(k.split("/")[0][6:]) for k in weights if k.split("/")[0][6:].isdigit())

    def _ln(self, x, name):
        import torch.nn.functional as F

        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}/gamma"], self.w[f"{name}/beta"], 1e-5)

    def _lin(self, x, name):
        return x @ self.w[f"{name}/weight"].T + self.w[f"{name}/bias"]

    def forward(self, mel: np.ndarray, layer: int | None = None) -> np.ndarray:
        """(n_mels, frames) log-mel -> (ceil(frames / 2), dim) hidden states of ``layer`` (None = last)."""
        import torch
        import torch.nn.functional as F

        layer = self.n_layers if layer is None else layer
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(mel, np.float32))[None]
            x = F.gelu(F.conv1d(x, self.w["conv1/weight"], self.w["conv1/bias"], padding=1))
            x = F.gelu(F.conv1d(x, self.w["conv2/weight"], self.w["conv2/bias"], stride=2, padding=1))[0].T
            x = x + self.w["position_encodings/encodings"][: x.shape[0]]
            t, d = x.shape
            for i in range(layer):
                p = f"layer_{i}"
                q, k, v = self._lin(self._ln(x, f"{p}/self_attention/layer_norm"), f"{p}/self_attention/linear_0"
                                    ).view(t, 3, self.heads, d // self.heads).permute(1, 2, 0, 3)
                a = F.scaled_dot_product_attention(q, k, v).permute(1, 0, 2).reshape(t, d)
                x = x + self._lin(a, f"{p}/self_attention/linear_1")
                h = F.gelu(self._lin(self._ln(x, f"{p}/ffn/layer_norm"), f"{p}/ffn/linear_0"))
                x = x + self._lin(h, f"{p}/ffn/linear_1")
            if layer == self.n_layers:
                x = self._ln(x, "layer_norm")
            return x.numpy()
