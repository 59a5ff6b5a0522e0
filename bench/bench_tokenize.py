"""Tokenization benchmark: every comparison is measured in the same run, medians and ratios printed.

(a) audio-seconds per wall-second, HuBERT-base architecture (random weights: speed does not depend on them)
    layer 6 + k-means units on 2-8 s segments: our TokenizeStage with DEFAULT settings (as a user gets it:
    default batching, ``precision: auto``) vs a per-file fp32 loop that mimics the usual feature-dump script
    (decode, features, assignment, write, one file at a time), interleaved, medians; the line starting
    ``default:`` is that ratio. Ablations: unit agreement of other precisions with fp32, padding share of
    length-bucketed batches (``--no-ablations`` skips them).
(b) k-means: faiss vs scikit-learn MiniBatchKMeans with fairseq learn_kmeans.py settings, same features:
    training time and inertia (sum of squared distances over ALL frames).
(c) achieved GFLOP/s of the HuBERT forward vs a plain matmul on the same device.

    .venv/bin/python bench/bench_tokenize.py                   # CPU defaults: a few minutes on 2 cores
    .venv/bin/python bench/bench_tokenize.py --device cuda --segments 400 --batch-seconds 240
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from timing import timed  # bench/timing.py (the script's folder is on sys.path)


def make_segments(n: int, out: Path, seed: int = 0) -> list[tuple[str, float]]:
    """n FLAC files of 2-8 s of espeak-ng speech (sentences joined until the target length)."""
    from slmfactory.manifests import generate as gen

    rng = random.Random(seed)
    files = []
    for i in range(n):
        target = rng.uniform(2.0, 8.0)
        parts, total = [], 0
        while total < target * 16000:
            w = gen.trim(gen.espeak(rng.choice(gen.SENTENCES), rng.choice(gen.VOICES)))
            parts += [w, np.zeros(3200, np.float32)]
            total += len(w) + 3200
        wav = np.concatenate(parts)[: int(target * 16000)]
        p = out / f"seg_{i:04d}.flac"
        sf.write(str(p), wav, 16000)
        files.append((str(p), len(wav) / 16000))
    return files


def per_file_loop(files, model, centroids: np.ndarray, out_dir: Path) -> list[np.ndarray]:
    """The usual dump script: one utterance at a time, fp32, numpy distance + argmin, one write per file."""
    from slmfactory.manifests.audio import load_audio

    c_sq = (centroids ** 2).sum(1)
    units = []
    with open(out_dir / "units.txt", "w") as fh, torch.inference_mode():
        for path, _ in files:
            wav, _ = load_audio(path)
            x = torch.from_numpy(np.pad(wav, 40))[None]
            feats, _ = model.extract_features(x, num_layers=6)
            f = feats[-1][0].numpy()
            d = (f ** 2).sum(1, keepdims=True) - 2 * f @ centroids.T + c_sq
            u = d.argmin(1)
            fh.write(os.path.basename(path) + "|" + " ".join(map(str, u)) + "\n")
            units.append(u)
    return units


def our_path(files, stage, rows_per_call: int = 16) -> list[np.ndarray]:
    rows = [{"id": str(i), "audio_path": p, "start": 0.0, "duration": d} for i, (p, d) in enumerate(files)]
    units = []
    for s in range(0, len(rows), rows_per_call):
        chunk = rows[s: s + rows_per_call]
        out = stage({k: [r[k] for r in chunk] for k in chunk[0]})
        assert not any(out["error"]), out["error"]
        units += [np.asarray(u) for u in out["units"]]
    return units


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b) if len(x) == len(y))
    return same / max(1, sum(len(x) for x in a))


def bench_a(args, tmp: Path):
    from slmfactory.tokenize import kmeans as km
    from slmfactory.tokenize.stage import TokenizeStage

    files = make_segments(args.segments, tmp)
    audio_s = sum(d for _, d in files)
    from slmfactory.tokenize.hubert import TorchaudioHubert

    fp32 = TorchaudioHubert(None, layer=6, device=args.device, precision="fp32", batch_seconds=0, seed=0)
    from slmfactory.manifests.audio import load_audio

    feats = np.concatenate(fp32.features([load_audio(p)[0] for p, _ in files]))
    if "a" not in args.only:
        return feats, fp32
    model = km.train(feats, args.k, seed=0, niter=50)
    model.save(tmp / "km")
    base_model = fp32.model if args.device == "cpu" else fp32.model.cpu()

    def mk(prec, bs):
        st = TokenizeStage("hubert", kmeans=str(tmp / "km"), allow_random=True, device=args.device,
                           precision=prec, batch_seconds=bs)
        st.tok.extractor.model.load_state_dict(fp32.model.state_dict())  # the same random weights everywhere
        return st

    ours = mk(None, args.batch_seconds)  # the defaults: precision auto (calibrated at build), default batching
    dec = ours.tok.precision
    print(f"(a) {len(files)} segments, {audio_s:.1f} s of audio, device={fp32.device}, "
          f"threads={torch.get_num_threads()}, default precision auto -> {dec.used} (candidate {dec.candidate}, "
          f"calibration agreement {dec.agreement if dec.agreement is not None else 'n/a'}), "
          f"batch_seconds={ours.tok.extractor.batch_seconds:g}")
    our_path(files[:2], ours)  # warm-up (kernel selection) for both paths
    per_file_loop(files[:2], base_model, model.centroids, tmp)
    results = {}
    default_name = (f"ours, defaults ({ours.tok.extractor.precision}, batch_seconds="
                    f"{ours.tok.extractor.batch_seconds:g})")
    for _ in range(args.repeat):  # interleave the two so machine load affects both alike
        for name, fn in (("per-file fp32 loop", lambda: per_file_loop(files, base_model, model.centroids, tmp)),
                         (default_name, lambda: our_path(files, ours))):
            t, u = timed(fn, 1)
            results.setdefault(name, ([], None))
            results[name] = (results[name][0] + [t], u)
    base_name = "per-file fp32 loop"
    base_t = statistics.median(results[base_name][0])
    base_units = results[base_name][1]
    for name, (ts, u) in results.items():
        t = statistics.median(ts)
        print(f"    {name:45s} {audio_s / t:7.1f} audio-s/s   x{base_t / t:4.2f} vs loop   "
              f"unit agreement with fp32 {agreement(u, base_units):.4f}")
    ts = results[default_name][0]
    print(f"default: x{base_t / statistics.median(ts):.2f} vs the per-file fp32 loop (medians of {len(ts)} "
          f"interleaved runs; per run x{', x'.join(f'{b / t:.2f}' for b, t in zip(results[base_name][0], ts))}; "
          f"precision {dec.used}, unit agreement with fp32 {agreement(results[default_name][1], base_units):.4f}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.no_ablations:
        return feats, fp32
    # ablations, one run each: the other precision, and padded length-bucketed batches
    abl = []
    precs = ["fp32", "bf16"] if args.device == "cpu" else ["fp32", "bf16", "fp16"]
    for prec in precs:
        for bs in (0.0, args.abl_batch_seconds):
            if prec == ours.tok.extractor.precision and bs == ours.tok.extractor.batch_seconds:
                continue
            abl.append((f"ours {prec}, " + (f"batches of <= {bs:g} s" if bs else "one item per forward"), mk(prec, bs)))
    for name, st in abl:
        our_path(files[:2], st)
        t, u = timed(lambda: our_path(files, st), 1)
        pad = st.tok.extractor.last_padding_share
        print(f"    {name:45s} {audio_s / t:7.1f} audio-s/s   x{base_t / t:4.2f} vs loop   "
              f"unit agreement with fp32 {agreement(u, base_units):.4f}   padding share (last call) {pad:.1%}")
    return feats, fp32


def bench_b(args, feats: np.ndarray, ext):
    from sklearn.cluster import MiniBatchKMeans

    from slmfactory.tokenize import kmeans as km
    from slmfactory.tokenize.presets import FAIRSEQ_KMEANS as F

    have_s = len(feats) / 50.0
    if args.kmeans_seconds > have_s:  # more real speech features (same random-weight HuBERT, fp32)
        with tempfile.TemporaryDirectory() as d:
            extra = make_segments(int(np.ceil((args.kmeans_seconds - have_s) / 5.0)), Path(d), seed=1)
            from slmfactory.manifests.audio import load_audio

            feats = np.concatenate([feats] + ext.features([load_audio(p)[0] for p, _ in extra]))
    x = np.ascontiguousarray(feats, dtype=np.float32)
    print(f"(b) k-means on {x.shape[0]} x {x.shape[1]} HuBERT layer-6 features, k={args.k}")
    t0 = time.perf_counter()
    skm = MiniBatchKMeans(n_clusters=args.k, init=F["init"], batch_size=F["batch_size"], max_iter=F["max_iter"],
                          n_init=F["n_init"], random_state=F["seed"], max_no_improvement=F["max_no_improvement"],
                          tol=F["tol"], reassignment_ratio=F["reassignment_ratio"], compute_labels=False,
                          verbose=0).fit(x)
    t_sk = time.perf_counter() - t0
    i_sk = km.inertia(x, skm.cluster_centers_.astype(np.float32))
    print(f"    {'sklearn MiniBatchKMeans (fairseq settings)':45s} {t_sk:8.2f} s   inertia {i_sk:.4e}")
    runs = [("k-means++", 1, 256), ("k-means++", 1, args.max_points_per_centroid), ("random", args.nredo, 256)]
    for init, nredo, mppc in runs:
        t0 = time.perf_counter()
        m = km.train(x, args.k, niter=args.niter, nredo=nredo, seed=1369, max_points_per_centroid=mppc, init=init)
        t_f = time.perf_counter() - t0
        i_f = km.inertia(x, m.centroids)
        label = f"faiss init={init} nredo={nredo} niter={args.niter} mppc={mppc}"
        print(f"    {label:45s} {t_f:8.2f} s   inertia {i_f:.4e}   x{t_sk / t_f:6.1f} faster, "
              f"inertia ratio {i_f / i_sk:.4f}")


def bench_c(args, ext):
    from torch.utils.flop_counter import FlopCounterMode

    from slmfactory.tokenize.hubert import TorchaudioHubert

    ext = TorchaudioHubert(None, layer=6, device=args.device, precision="fp32", batch_seconds=0, seed=0)
    # FlopCounterMode cannot see through weight-norm parametrizations: bake the weight in (same numbers)
    torch.nn.utils.parametrize.remove_parametrizations(ext.model.encoder.transformer.pos_conv_embed.conv, "weight")
    dev = ext.device
    wav = np.random.default_rng(0).normal(0, 0.1, int(args.c_seconds * 16000)).astype(np.float32)
    ext.features([wav])
    with FlopCounterMode(display=False) as fc:
        ext.features([wav])
    flops = fc.get_total_flops()
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    def fwd():
        ext.features([wav]); sync()

    t, _ = timed(fwd, args.repeat + 2)
    n = 2048
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    rows = [(f"HuBERT-base L6 forward, {args.c_seconds:g} s, {ext.precision}", flops / t / 1e9)]
    for dt in (torch.float32, torch.bfloat16):
        aa, bb = a.to(dt), b.to(dt)
        aa @ bb; sync()
        tm, _ = timed(lambda: (aa @ bb, sync()), 5)
        rows.append((f"plain matmul {n}x{n} {str(dt)[6:]}", 2 * n ** 3 / tm / 1e9))
    print(f"(c) achieved GFLOP/s on {dev} ({flops / 1e9:.1f} GFLOP per forward)")
    peak = max(r[1] for r in rows[1:])
    for name, g in rows:
        print(f"    {name:45s} {g:9.1f} GFLOP/s   {g / peak:6.1%} of the best matmul")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--segments", type=int, default=12)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-seconds", type=float, default=None, help="ours: default per device (CPU 0, GPU 240)")
    p.add_argument("--abl-batch-seconds", type=float, default=30.0)
    p.add_argument("--no-ablations", action="store_true", help="(a): only the loop and the defaults")
    p.add_argument("-k", type=int, default=100)
    p.add_argument("--kmeans-seconds", type=float, default=300.0, help="seconds of speech features for (b)")
    p.add_argument("--niter", type=int, default=25)
    p.add_argument("--nredo", type=int, default=1, help="restarts for the random-init faiss run")
    p.add_argument("--max-points-per-centroid", type=int, default=100000)
    p.add_argument("--c-seconds", type=float, default=5.0)
    p.add_argument("--only", default="abc")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        feats, ext = bench_a(args, Path(d))
        if "b" in args.only:
            bench_b(args, feats, ext)
        if "c" in args.only:
            bench_c(args, ext)


if __name__ == "__main__":
    main()
