"""DNSMOS scores and speed: LibriVox vs the same clips with white noise vs espeak-ng voices; chars/s of both.

Prints, per audio set, the mean DNSMOS SIG/BAK/OVRL/P.808 (the `dnsmos` stage, bundled speechmos ONNX
models) and the speaking rate the `speech_filter` stage computes; then the real-time factor (compute seconds
per audio second, median over --repeats; with the CPU seconds per audio second, which a busy machine
disturbs less) of the stage at hop 1 s (the reference) and hop 9.01 s (the ingest
recipe), on 1 and 2 intra-op threads. Baseline in the same run: the reference `speechmos` implementation.

    python bench/bench_quality.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from timing import median_time

from slmfactory.manifests.audio import load_audio
from slmfactory.manifests.generate import SENTENCES, VOICES, librivox_clips, sentence
from slmfactory.stages.dnsmos import DnsmosStage
from slmfactory.stages.speech_filter import chars_per_second

SR = 16_000


def noisy(wav: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(wav)).astype(np.float32)
    noise *= np.sqrt(np.mean(wav ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1, 1).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed-only", action="store_true", help="skip the score table")
    args = ap.parse_args()
    lv = [(load_audio(str(p))[0], t) for p, t in librivox_clips()]
    es = [(sentence(SENTENCES[i], v).wav, SENTENCES[i]) for i, v in enumerate(VOICES)]
    sets = {"librivox": lv, **{f"librivox {snr} dB SNR": [(noisy(w, snr, i), t) for i, (w, t) in enumerate(lv)]
                               for snr in (20, 10, 5, 0)},
            "espeak-ng (6 voices)": es,
            "white noise": [(noisy(np.zeros(5 * SR, np.float32) + 1e-3, -40, i), None) for i in range(2)],
            "silence": [(np.zeros(5 * SR, np.float32), None)]}
    stage = DnsmosStage(hop_seconds=9.01)
    print(f"{'set':24s} {'n':>2s} {'SIG':>5s} {'BAK':>5s} {'OVRL':>5s} {'P808':>5s} {'OVRL min':>8s} {'chars/s':>9s}")
    for name, items in (sets if not args.speed_only else {}).items():
        scores = [stage.score(w) for w, _ in items]
        cps = [chars_per_second(t, len(w) / SR) for w, t in items if t]
        m = {k: statistics.mean(s[k] for s in scores) for k in ("sig", "bak", "ovrl", "p808")}
        rate = f"{min(cps):.1f}-{max(cps):.1f}" if cps else "-"
        print(f"{name:24s} {len(items):2d} {m['sig']:5.2f} {m['bak']:5.2f} {m['ovrl']:5.2f} {m['p808']:5.2f} "
              f"{min(s['ovrl'] for s in scores):8.2f} {rate:>9s}")
    audio_s = sum(len(w) for w, _ in lv) / SR
    print(f"\nRTF on the {len(lv)} LibriVox clips ({audio_s:.1f} s of audio; compute s / audio s, lower is faster)")
    for threads in (1, 2):
        st = DnsmosStage(num_threads=threads)
        for hop in (1.0, 9.01):
            cpu0 = time.process_time()
            t = median_time(lambda: [st.score(w, hop=hop) for w, _ in lv], args.repeats)
            cpu = (time.process_time() - cpu0) / max(1, args.repeats)
            print(f"  dnsmos stage  threads={threads} hop={hop:<5} RTF {t / audio_s:.3f}  CPU s/audio s {cpu / audio_s:.3f}")
    from speechmos.dnsmos import DNSMOS  # baseline: the reference implementation (librosa features)

    from slmfactory.manifests.models import bundled

    folder = bundled("dnsmos").path()
    ref = DNSMOS(str(folder / "sig_bak_ovr.onnx"), str(folder / "model_v8.onnx"))
    ref(lv[0][0], SR, False)  # first call imports librosa.feature: not counted
    t = median_time(lambda: [ref(w, SR, False) for w, _ in lv], args.repeats)
    print(f"  speechmos reference (default threads, hop 1 s) RTF {t / audio_s:.3f}")


if __name__ == "__main__":
    main()
