"""TTS real-time factor per backend on the same texts (synthesis seconds / audio seconds; lower is faster).

Backends: ``piper`` (the bundled en_US-joe-medium, or ``--piper FILE.onnx``) and ``espeak`` (espeak-ng,
``workers`` processes at once), plus ``coqui`` with ``--coqui DIR``. Each backend speaks the same ``--n``
texts; the figure is the median over ``--repeats`` runs of the whole batch, one-by-one and batched
(``workers``/``threads`` as given), and the ratio against piper measured in the same run.

    .venv/bin/python bench/bench_tts.py [--n 12] [--repeats 3] [--threads 2] [--piper FILE.onnx] [--coqui DIR]
"""
from __future__ import annotations

import argparse

from slmfactory.manifests.generate import SENTENCES
from timing import median_time  # bench/timing.py (the script's folder is on sys.path)


def rtf(tts, texts: list[str], voices: list[str], repeats: int) -> tuple[float, float, float]:
    """(audio seconds, median RTF of one batched call, median RTF one text per call)."""
    wavs = tts.synthesize(texts, voices)  # warm-up, and the audio length
    audio_s = sum(len(w) for w in wavs) / tts.sample_rate
    batched = median_time(lambda: tts.synthesize(texts, voices), repeats)
    single = median_time(lambda: [tts.synthesize([t], [v]) for t, v in zip(texts, voices)], repeats)
    return audio_s, batched / audio_s, single / audio_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="texts per backend")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads (piper), espeak-ng workers")
    ap.add_argument("--piper", default=None, help="a local piper .onnx voice (default: the bundled one)")
    ap.add_argument("--coqui", default=None, help="a local Coqui model folder")
    a = ap.parse_args()

    from slmfactory.synth.tts import make_tts

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(a.n)]
    runs = [("piper", {"model_path": a.piper, "threads": a.threads}),
            ("espeak", {"workers": a.threads})]
    if a.coqui:
        runs.append(("coqui", {"model_dir": a.coqui}))
    base = None
    for name, kw in runs:
        tts = make_tts(name, **kw)
        pool = tts.voices() or [""]
        voices = [pool[i % len(pool)] for i in range(a.n)]
        audio_s, batched, single = rtf(tts, texts, voices, a.repeats)
        base = base or batched
        print(f"tts {name:7s} {a.n} texts, {audio_s:5.1f} s audio at {tts.sample_rate} Hz | RTF batched "
              f"{batched:.3f} | one-by-one {single:.3f} | x{batched / base:.2f} piper's time")


if __name__ == "__main__":
    main()
