"""Peak memory of the ingest path on hour-long files: 10 min / 1 h / 2 h, MP3 44.1 kHz stereo and WAV 16 kHz.

Generates the long files itself in a temp dir (espeak-ng sentences and silences, looped by ffmpeg; nothing is
checked in), then for every file runs, in a fresh subprocess:
  * stages - decode + vad_segment + a stage that loads each segment (``load_audio`` by default, ``dnsmos`` with
    --downstream dnsmos) in one process, the way one Ray worker runs them: peak RSS = ``ru_maxrss`` of it;
  * ray    - the same three stages as a recipe on the embedded Ray (``run_recipe``): peak RSS of every process of
    the run (driver, raylet, workers) sampled every 50 ms with psutil; the largest worker is printed;
  * whole  - (``--baseline``, 10 min only by default) the stages path with ``decode stream_seconds=0``: every
    file decoded whole and sliced in memory, as before streaming; the ratio ours/whole is printed.
The target (issue 12): every worker <= 1 GB for the 2-hour MP3, and flat from 10 min to 2 h.

    python bench/bench_long_audio.py [--sizes 10 60 120] [--formats mp3 wav] [--modes stages ray] [--baseline]
                                     [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
mode, path, out, downstream = sys.argv[1:5]
t0 = time.time()
rows = [{"id": "long", "audio_path": path, "start": None, "duration": None, "source": "bench", "meta": None}]
if mode in ("stages", "whole"):
    from slmfactory.stages.decode import DecodeStage, LoadAudioStage
    from slmfactory.stages.segment import VadSegmentStage
    from slmfactory.manifests.registry import STAGES
    decode = DecodeStage(stream_seconds=0 if mode == "whole" else 60.0)
    vad = VadSegmentStage(max_seconds=20.0, max_gap=2.0)
    after = LoadAudioStage() if downstream == "load_audio" else STAGES.load(downstream)()
    segs = vad(decode(rows))  # max_gap 2 s: podcast-like 5-20 s segments (the sentences' pauses are 0.4-1.5 s)
    bad = [r["error"] for r in segs if r.get("error")]
    for i in range(0, len(segs), 8):  # the runner hands a stage small batches; audio is dropped after each
        done = after(segs[i:i + 8])
        bad += [r["error"] for r in done if r.get("error")]
    n, worker = len(segs), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = {"errors": bad[:3]}
else:
    import threading, psutil
    from slmfactory.pipelines.runner import run_recipe
    peaks, stop = {}, threading.Event()
    me = psutil.Process()
    def watch():
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    rss, cmd = p.memory_info().rss, " ".join(p.cmdline()[:3])
                except psutil.Error:
                    continue
                key = (p.pid, "worker" if "default_worker" in cmd or "ray::" in cmd else cmd[:60])
                peaks[key] = max(peaks.get(key, 0), rss)
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()
    recipe = os.path.join(out, "recipe.yaml")
    with open(recipe, "w") as f:
        f.write("name: long_audio\ninput: {kind: folder, root: %s}\noutput: %s\nshard_size: 1\nstages:\n"
                "  - {uses: decode, batch_size: 1}\n"
                "  - {uses: vad_segment, batch_size: 1, params: {max_seconds: 20.0, max_gap: 2.0}}\n"
                "  - {uses: %s, batch_size: 8}\n" % (os.path.dirname(path), os.path.join(out, "run"), downstream))
    res = run_recipe(recipe)
    stop.set()
    n = res.rows
    workers = [v for (pid, kind), v in peaks.items() if kind == "worker"]
    worker = max(workers, default=0) / 2**20
    extra = {"errors": res.errors, "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "processes_mb": sorted(round(v / 2**20) for v in peaks.values())[-4:]}
print("RESULT" + json.dumps({"segments": n, "wall": time.time() - t0, "worker_mb": worker, **extra}))
"""


def make_base(tmp: Path) -> Path:
    """~40 s of espeak-ng speech: sentences separated by 0.4-1.5 s silences (a looped unit for the long files)."""
    from slmfactory.manifests import generate

    if not generate.have_espeak():
        sys.exit("espeak-ng is needed to generate speech (apt-get install espeak-ng)")
    sentences = ["the birch canoe slid on the smooth planks", "glue the sheet to the dark blue background",
                 "it is easy to tell the depth of a well", "these days a chicken leg is a rare dish",
                 "rice is often served in round bowls", "the juice of lemons makes fine punch",
                 "the box was thrown beside the parked truck", "the hogs were fed chopped corn and garbage",
                 "four hours of steady work faced us", "a large size in stockings is hard to sell"]
    tmp.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, text in enumerate(sentences):
        wav = tmp / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True)
        parts.append(wav)
    lst = tmp / "parts.txt"
    gaps = [0.4, 1.2, 0.6, 1.5, 0.8]
    with open(lst, "w") as f:
        for i, p in enumerate(parts):
            sil = tmp / f"sil{i}.wav"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t",
                            str(gaps[i % len(gaps)]), str(sil)], check=True)
            f.write(f"file '{p}'\nfile '{sil}'\n")
    base = tmp / "base.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-ar", "22050",
                    str(base)], check=True)
    return base


def make_long(base: Path, out: Path, minutes: float, fmt: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"long_{minutes:g}min.{fmt}"
    if path.exists():  # --workdir: made by an earlier run
        return path
    codec = ["-ar", "44100", "-ac", "2", "-b:a", "64k"] if fmt == "mp3" else ["-ar", "16000", "-ac", "1"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(base), "-t", str(minutes * 60),
                    *codec, str(path)], check=True)
    return path


def run_child(mode: str, path: Path, out: Path, downstream: str, tries: int = 2) -> dict | None:
    """One measurement in a fresh process; None (with the reason printed) when it failed twice."""
    for attempt in range(tries):
        run_out = out / f"try{attempt}"
        run_out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(run_out), downstream],
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
        if line is not None:
            return json.loads(line[6:])
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {mode} {path.name}: attempt {attempt + 1} failed: {why[:200]}", flush=True)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[10, 60, 120], help="minutes")
    ap.add_argument("--formats", nargs="+", default=["mp3", "wav"], choices=["mp3", "wav"])
    ap.add_argument("--modes", nargs="+", default=["stages", "ray"], choices=["stages", "ray"])
    ap.add_argument("--downstream", default="load_audio", help="stage that loads each segment (load_audio|dnsmos)")
    ap.add_argument("--baseline", action="store_true", help="also decode whole (before streaming), 10 min only")
    ap.add_argument("--baseline-sizes", type=float, nargs="+", default=[10])
    ap.add_argument("--workdir", help="keep the generated files here (reused by later runs) instead of a temp dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_long_audio_") as d:
        tmp = Path(args.workdir or d)
        base = tmp / "base" / "base.wav"
        base = base if base.exists() else make_base(tmp / "base")
        print(f"{'file':>22} {'MB':>6} {'mode':>6} {'segments':>8} {'wall s':>7} {'peak worker RSS MB':>19}")
        for fmt in args.formats:
            for minutes in args.sizes:
                t0 = time.time()
                path = make_long(base, tmp / f"{fmt}_{minutes:g}", minutes, fmt)
                mb = path.stat().st_size / 2**20
                gen_s = time.time() - t0
                modes = list(args.modes) + (["whole"] if args.baseline and minutes in args.baseline_sizes else [])
                got = {}
                for mode in modes:
                    r = run_child(mode, path, tmp / f"out_{fmt}_{minutes:g}_{mode}", args.downstream)
                    if r is None:
                        continue
                    got[mode] = r
                    note = f"  errors={r['errors']}" if r.get("errors") else ""
                    if mode == "ray":
                        note += f"  driver {r['driver_mb']:.0f} MB, largest processes {r['processes_mb']} MB"
                    print(f"{path.name:>22} {mb:6.1f} {mode:>6} {r['segments']:8d} {r['wall']:7.1f} "
                          f"{r['worker_mb']:19.0f}{note}", flush=True)
                if "whole" in got and "stages" in got:
                    print(f"{'':>22} ratio stages/whole peak RSS: {got['stages']['worker_mb'] / got['whole']['worker_mb']:.2f}"
                          f" (file generated in {gen_s:.0f} s)")
                if not args.workdir:
                    path.unlink()


if __name__ == "__main__":
    main()
