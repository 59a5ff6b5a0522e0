"""ASR accuracy and speed per backend on the real LibriVox clips, the baseline measured in the same run.

    .venv/bin/python bench/bench_asr.py              # 3 repeats, 2 CPU threads
    .venv/bin/python bench/bench_asr.py --quick      # 1 repeat, whisper int8 beam 1 only

Prints, per backend (pocketsphinx = the baseline; whisper = faster-whisper with the bundled tiny.en; openai-whisper
only when installed and ``--openai-checkpoint`` names a local .pt): corpus WER (textnorm-normalized, jiwer), median
wall seconds over ``--repeats`` transcriptions of all clips, RTF = seconds / audio seconds, and the speed ratio to
pocketsphinx. Whisper variants: batched (``BatchedInferencePipeline``, all clips in one call) vs one by one
(``WhisperModel.transcribe`` per clip), int8 vs float32, beam 1 vs 5. Model load time is printed separately.
No timing is asserted anywhere; on a shared machine compare ratios from one run, not absolute seconds.
"""
from __future__ import annotations

import argparse
import sys
import time

from timing import timed  # bench/timing.py (the script's folder is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, fewer whisper variants")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for whisper")
    ap.add_argument("--openai-checkpoint", default=None, help="a local openai-whisper .pt (optional)")
    a = ap.parse_args()
    repeats = 1 if a.quick else a.repeats

    import jiwer

    from slmfactory.manifests.audio import load_audio
    from slmfactory.manifests.generate import librivox_clips
    from slmfactory.stages.asr_faster_whisper import FasterWhisperAsr, load_model, resolve_model_path
    from slmfactory.stages.asr_sphinx import PocketsphinxAsr
    from slmfactory.stages.textnorm import normalize_text

    fetch = "python -m slmfactory.manifests.generate fetch-librivox"
    clips = librivox_clips() or sys.exit(f"LibriVox clips missing: {fetch}")
    wavs, refs = map(list, zip(*[(load_audio(str(p))[0], normalize_text(t)) for p, t in clips]))
    audio_s = sum(map(len, wavs)) / 16000
    print(f"audio: {len(wavs)} LibriVox clips, {audio_s:.1f} s; whisper threads {a.threads}; repeats {repeats}")

    def measure(label: str, backend, base: float | None = None) -> float:
        backend.transcribe_batch(wavs[:1])  # warm-up
        sec, out = timed(lambda: backend.transcribe_batch(wavs), repeats)
        wer = jiwer.wer(refs, [normalize_text(t.text) for t in out])
        ratio = f"  {base / sec:5.2f}x pocketsphinx speed" if base else ""
        print(f"  {label:<42} WER {wer:.3f}  median {sec:6.2f} s  RTF {sec / audio_s:.3f}{ratio}")
        return sec

    print("backend (variant)")
    t_ps = measure("pocketsphinx (baseline)", PocketsphinxAsr())
    path, _ = resolve_model_path(None)
    variants = [("int8", 1, True), ("int8", 1, False)]
    if not a.quick:
        variants += [("float32", 1, True), ("float32", 1, False), ("int8", 5, True), ("int8", 5, False)]
    for ct, beam, batched in variants:
        t0 = time.perf_counter()
        load_model(path, "cpu", ct, a.threads)  # cached: the first call per compute type is the load
        load = time.perf_counter() - t0
        fw = FasterWhisperAsr(compute_type=ct, beam_size=beam, batched=batched, cpu_threads=a.threads)
        how = "batched" if batched else "one by one"
        measure(f"whisper tiny.en {ct} beam {beam} {how}", fw, t_ps)
        if load > 0.01:
            print(f"    (model load {load:.2f} s)")
    if a.openai_checkpoint:
        from slmfactory.stages.asr_whisper import WhisperAsr

        measure("openai-whisper (checkpoint)", WhisperAsr(model_path=a.openai_checkpoint), t_ps)
    else:
        print("  openai-whisper: skipped (give --openai-checkpoint /path/model.pt with openai-whisper installed)")


if __name__ == "__main__":
    main()
