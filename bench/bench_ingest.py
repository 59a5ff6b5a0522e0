"""Ingest throughput: audio-seconds per wall-second for discover + decode + VAD segmentation.

Compares, in one run, on the demo corpus scaled 1x and 10x:
  * baseline - the usual script: a plain single-process Python loop, file by file, calling
    silero-vad's own `get_speech_timestamps` (one 32 ms chunk per model call), same decode and
    segment merge, no Ray;
  * ours     - `run_recipe("ingest")` on the embedded Ray (streaming, all cores, VAD stepping
    up to 64 parallel streams of a file as one batch).
Peak RSS of each path is measured in a fresh subprocess (ru_maxrss of that process and its
children), so the 10x run shows whether memory grows with the corpus. The driver's own peak
(ru_maxrss of the driver process alone: Ray workers write the shards, the driver only collects
counts) is printed apart: it must stay flat from 1x to 10x. Medians over --repeats.

    python bench/bench_ingest.py [--repeats 3] [--scales 1 10] [--modes baseline ours]
    python bench/bench_ingest.py --repeats 1 --modes ours        # the driver-memory check alone
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
mode, root, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.time()
if mode == "baseline":
    from slmfactory.manifests.corpora import discover
    from slmfactory.manifests.audio import load_audio
    from slmfactory.stages.segment import merge_spans, split_long
    import torch
    from silero_vad import load_silero_vad, get_speech_timestamps
    model = load_silero_vad()
    seconds = segs = 0
    for item in discover("podcasts", root):  # the usual script: one file at a time, silero's own loop
        wav, info = load_audio(item["audio_path"])
        seconds += len(wav) / 16000
        ts = get_speech_timestamps(torch.from_numpy(wav), model, min_silence_duration_ms=300, speech_pad_ms=60)
        spans = [(t["start"] / 16000, t["end"] / 16000) for t in ts]
        for s, e in merge_spans(spans, 1.0, 8.0, 0.5):
            segs += len(split_long(wav, s, e, 8.0, 1.0))
else:
    from slmfactory.pipelines.runner import _init_ray, run_recipe
    _init_ray(None)  # embedded Ray start-up, timed separately: a cluster or a long run pays it once
    startup = time.time() - t0
    if mode == "driver":  # the driver-memory check: decode + VAD only (DNSMOS would take most of the time)
        light = out + ".yaml"
        open(light, "w").write(f"name: ingest_light\ninput: {{kind: podcasts, root: '{root}'}}\noutput: '{out}'\n"
                               "shard_size: 4\nstages:\n  - {uses: decode, batch_size: 4}\n"
                               "  - {uses: vad_segment, params: {max_seconds: 8.0}, batch_size: 4}\n")
        res = run_recipe(light)
    else:
        res = run_recipe("ingest", {"kind": "podcasts", "root": root, "out": out, "max_seconds": 8.0, "shard_size": 4})
    import polars as pl
    man = pl.read_parquet(os.path.join(out, "manifest", "*.parquet"))
    segs = man.height
    seconds = sum(json.load(open(os.path.join(root, "_seconds.json"))).values())
wall = time.time() - t0
startup = locals().get("startup", 0.0)
driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss = max(driver, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print("RESULT" + json.dumps({"seconds": seconds, "wall": wall, "startup": startup, "segments": segs,
                             "rss_mb": rss / 1024, "driver_rss_mb": driver / 1024}))
"""


def make_corpus(root: Path, scale: int) -> float:
    """Podcast-shaped demo corpus; scale N = N times as many episodes (copies under new names)."""
    from slmfactory.manifests import generate
    from slmfactory.manifests.audio import probe

    base = root / "base"
    generate.make_podcasts(base, episodes=4, sentences=10, mp3=False)
    out = root / f"x{scale}"
    out.mkdir(parents=True)
    seconds = {}
    for k in range(scale):
        for wav in sorted(base.glob("*.wav")):
            dst = out / f"{wav.stem}_copy{k:03d}.wav"
            shutil.copy(wav, dst)
            seconds[dst.name] = probe(str(dst)).duration
    (out / "_seconds.json").write_text(json.dumps(seconds))
    shutil.rmtree(base)
    return sum(seconds.values())


def measure(mode: str, root: Path, work: Path) -> dict:
    out = work / f"out_{mode}_{time.time_ns()}"
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(root), str(out)], capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(line[0][6:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--modes", nargs="+", default=["baseline", "ours"], choices=["baseline", "ours", "driver"],
                    help="driver: the quick driver-memory check (decode + VAD only, driver peak RSS at each scale)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    print(f"machine: {os.cpu_count()} CPUs; corpus: podcast-shaped espeak-ng episodes, VAD max 8 s")
    rows = []
    try:
        for scale in args.scales:
            total = make_corpus(work / "corpus", scale)
            root = work / "corpus" / f"x{scale}"
            res = {m: [measure(m, root, work) for _ in range(args.repeats)] for m in args.modes}
            med = {m: statistics.median(r["seconds"] / r["wall"] for r in rs) for m, rs in res.items()}
            rss = {m: statistics.median(r["rss_mb"] for r in rs) for m, rs in res.items()}
            mine = "ours" if "ours" in res else "driver" if "driver" in res else None
            driver = statistics.median(r["driver_rss_mb"] for r in res[mine]) if mine else 0.0
            rows.append((scale, total, med, rss, driver))
            line = f"scale {scale:>3}x  audio {total / 60:6.1f} min"
            if "baseline" in res:
                line += (f" | baseline {med['baseline']:7.1f} s/s (RSS {rss['baseline']:6.0f} MB, "
                         f"{res['baseline'][0]['segments']} segs)")
            if mine:
                steady = statistics.median(r["seconds"] / (r["wall"] - r["startup"]) for r in res[mine])
                line += (f" | {mine} {med[mine]:7.1f} s/s (peak RSS driver {driver:6.0f} MB, with children "
                         f"{rss[mine]:6.0f} MB, {res[mine][0]['segments']} segs) | without Ray start-up {steady:.1f} s/s")
            if "ours" in res and "baseline" in res:
                line += f" | ratio {med['ours'] / med['baseline']:.2f}x, {steady / med['baseline']:.2f}x without start-up"
            print(line, flush=True)
            shutil.rmtree(work / "corpus", ignore_errors=True)
        print("\nmedian of", args.repeats, "runs; 'ours' includes embedded Ray start-up (~5-10 s) in its wall time")
        if len(rows) > 1 and {"ours", "driver"} & set(args.modes):
            print(f"driver peak RSS {rows[0][0]}x -> {rows[-1][0]}x corpus: {rows[0][4]:.0f} -> {rows[-1][4]:.0f} MB "
                  f"({rows[-1][4] / rows[0][4]:.2f}x; the driver holds no rows, workers write the shards)")
        if len(rows) > 1 and "baseline" in args.modes:
            print(f"baseline RSS {rows[0][0]}x -> {rows[-1][0]}x: {rows[0][3]['baseline']:.0f} -> "
                  f"{rows[-1][3]['baseline']:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
