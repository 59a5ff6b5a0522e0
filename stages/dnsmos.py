"""DNSMOS speech-quality scores (P.835 SIG/BAK/OVRL and P.808 MOS) for every segment, with optional minimums.

Why: crawled speech (podcasts, audiobooks) mixes studio takes with noisy, reverberant or music-backed ones;
Emilia-style pipelines keep the scores as columns and drop segments under a recipe threshold. The models are
Microsoft's DNSMOS ONNX files shipped by the ``speechmos`` package (``bundled("dnsmos")``), run with
onnxruntime on CPU, loaded once per stage instance.

What matches the reference (``speechmos.dnsmos.DNSMOS``, itself the DNS-Challenge ``dnsmos_local.py``):
windows of 9.01 s with a 1 s hop, scores averaged over windows; a segment shorter than 9.01 s is tiled by
doubling it until it is long enough (so a 3 s segment is scored on 12 s of itself: 3 windows); P.835 takes the
raw window, P.808 a 120-band log-mel of the window less its last 160 samples; the P.835 outputs go through the
non-personalized polynomial calibration. What differs: the log-mel is computed here with numpy (the same
filterbank and STFT as librosa's defaults) because importing ``librosa.feature`` costs ~3-6 s per worker
process; ``tests/test_quality.py`` checks our scores against ``speechmos`` on a real clip. ``hop_seconds``
is a parameter (the ingest recipe uses 9.01: one window per segment up to 19 s, ~3x cheaper on short
segments); every window is scored, where the reference skips windows 7-23 of long inputs (float rounding of
the window end). Figures and threshold advice: ``docs/quality.md``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..manifests.audio import load_audio
from ..manifests.models import bundled
from ..manifests.schema import AUDIO_COLUMN, TARGET_SAMPLE_RATE
from .base import Row, Stage, reject
from .speech_filter import bound

SR = TARGET_SAMPLE_RATE
WINDOW_S = 9.01  # the P.835 model's fixed input length
N_FFT, HOP, N_MELS = 321, 160, 120
COLUMNS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
# P.835 raw -> MOS calibration (non-personalized), highest power first (np.polyval order)
POLY = {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
        "ovrl": (-0.06766283, 1.11546468, 0.04602535)}


def _hz_to_mel(f: np.ndarray) -> np.ndarray:  # Slaney scale (librosa htk=False)
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-normalised triangular mel filters, as ``librosa.filters.mel`` builds them (n_mels x bins)."""
    fft_f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """The P.808 input: power mel (centred, zero-padded periodic-Hann STFT), dB re max, 80 dB floor, (x+40)/40."""
    y = np.pad(np.asarray(audio, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power.astype(np.float32) @ fbank.T  # frames x n_mels
    db = 10.0 * np.log10(np.maximum(mel, 1e-10)) - 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


class DnsmosStage(Stage):
    """Adds DNSMOS P.835 (dnsmos_sig, dnsmos_bak, dnsmos_ovrl) and P.808 (dnsmos_p808) scores; rejects rows under min_*."""

    name = "dnsmos"

    def __init__(self, min_ovrl: float | None = None, min_sig: float | None = None, min_bak: float | None = None,
                 min_p808: float | None = None, num_threads: int = 2, hop_seconds: float = 1.0,
                 model_dir: str | None = None):
        import onnxruntime as ort

        self.mins = {k: bound(f"min_{k}", v) for k, v in
                     {"ovrl": min_ovrl, "sig": min_sig, "bak": min_bak, "p808": min_p808}.items()}
        self.hop = float(hop_seconds)
        if self.hop <= 0:
            raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
        folder = Path(model_dir) if model_dir else bundled("dnsmos").path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, int(num_threads)), 1
        cpu = ["CPUExecutionProvider"]
        self.p835 = ort.InferenceSession(str(folder / "sig_bak_ovr.onnx"), opts, providers=cpu)
        self.p808 = ort.InferenceSession(str(folder / "model_v8.onnx"), opts, providers=cpu)
        self.fbank = mel_filterbank()

    def windows(self, wav: np.ndarray, hop: float | None = None) -> np.ndarray:
        """The 9.01 s windows the reference scores: short audio tiled by doubling, one window per ``hop`` s."""
        hop = self.hop if hop is None else float(hop)
        need = int(WINDOW_S * SR)
        while len(wav) < need:
            wav = np.concatenate([wav, wav])
        n = int((math.floor(len(wav) / SR) - WINDOW_S) / hop) + 1  # the reference's count (hop 1 s)
        starts = [int(round(i * hop * SR)) for i in range(max(n, 1))]
        return np.stack([wav[s:s + need] for s in starts if s + need <= len(wav)] or [wav[:need]])

    def score(self, wav: np.ndarray, hop: float | None = None) -> dict[str, float]:
        """DNSMOS of one 16 kHz mono waveform: {'sig', 'bak', 'ovrl', 'p808'} averaged over its windows."""
        wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        if len(wav) == 0:
            raise ValueError("empty audio")
        sig, bak, ovrl, p808 = [], [], [], []
        for win in self.windows(wav, hop):
            raw = self.p835.run(None, {"input_1": win[None, :]})[0][0]
            sig.append(np.polyval(POLY["sig"], raw[0]))
            bak.append(np.polyval(POLY["bak"], raw[1]))
            ovrl.append(np.polyval(POLY["ovrl"], raw[2]))
            feats = log_mel(win[:-HOP], self.fbank)[None]
            p808.append(float(self.p808.run(None, {"input_1": feats})[0][0][0]))
        return {"sig": float(np.mean(sig)), "bak": float(np.mean(bak)), "ovrl": float(np.mean(ovrl)),
                "p808": float(np.mean(p808))}

    def process(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            wav = row.get(AUDIO_COLUMN)
            if wav is None:
                if not row.get("audio_path"):
                    continue  # text-only row: nothing to score
                wav, _ = load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))
            if len(wav) == 0:
                reject(row, self.name, f"{row.get('audio_path')}: empty audio segment; check start/duration")
                continue
            scores = self.score(wav)
            for key, value in scores.items():
                row[f"dnsmos_{key}"] = value
            for key, floor in self.mins.items():
                if floor is not None and scores[key] < floor:
                    reject(row, self.name, f"{row.get('audio_path')} @ {float(row.get('start') or 0.0):.2f}s: "
                                           f"DNSMOS {key.upper()} {scores[key]:.2f} is below min_{key} {floor:g}; "
                                           f"lower or unset min_{key} in the recipe to keep noisier speech")
                    break
        return rows
