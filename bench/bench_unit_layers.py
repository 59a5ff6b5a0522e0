"""Which features make units that carry words AND phones? A unit n-gram probe, minutes instead of a training run.

For every Whisper encoder layer (and the spectral baseline), fit k-means (k=100, 60k frames, raw and
standardized) on the training utterances of a ``bench_slm_results.py`` work folder, turn the training
utterances and the benchmark pairs into deduplicated units, fit an interpolated n-gram (Witten-Bell) on the
training units and score each pair by mean NLL per unit. What a small LM can learn from a unit set is bounded
by what its units keep: this ranks unit sets before spending a training run (docs/tokenize.md).

    .venv/bin/python bench/bench_unit_layers.py out/slm_results          # a WORK folder with inter/ and bench/
"""
from __future__ import annotations

import argparse
import collections
import math
import time

import numpy as np
import polars as pl

from slmfactory.manifests.audio import load_audio
from slmfactory.tokenize import kmeans as km, postprocess
from slmfactory.tokenize.assign import Assigner
from slmfactory.tokenize.factory import build_features


def audio(row: dict) -> np.ndarray:
    return load_audio(row["audio_path"], row.get("start") or 0.0, row.get("duration"))[0]


def dedup(units: np.ndarray) -> list[int]:
    return postprocess.dedup(units)[0].tolist()


def ngram_scorer(runs: list[list[int]], order: int, vocab: int):
    """Mean NLL per unit under an interpolated Witten-Bell n-gram fitted on ``runs`` (BOS -2, EOS -3)."""
    counts = [collections.Counter() for _ in range(order + 1)]
    ctx = [collections.Counter() for _ in range(order + 1)]
    types = [collections.defaultdict(set) for _ in range(order + 1)]
    for r in runs:
        s = [-2] + r + [-3]
        for i in range(1, len(s)):
            for n in range(1, min(order, i + 1) + 1):
                h = tuple(s[i - n + 1:i])
                counts[n][h + (s[i],)] += 1
                ctx[n][h] += 1
                types[n][h].add(s[i])

    def prob(hist: list[int], w: int) -> float:
        p = 1.0 / (vocab + 1)
        for n in range(1, min(order, len(hist) + 1) + 1):
            h = tuple(hist[len(hist) - n + 1:]) if n > 1 else ()
            if t := ctx[n][h]:
                lam = t / (t + len(types[n][h]))
                p = lam * counts[n][h + (w,)] / t + (1 - lam) * p
        return p

    def nll(u: list[int]) -> float:
        s = [-2] + u + [-3]
        return sum(-math.log(prob(s[:i], s[i])) for i in range(1, len(s))) / (len(s) - 1)
    return nll


def accuracy(nll, pairs: dict) -> dict[str, float]:
    res: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for (_, kind), d in pairs.items():
        if "positive" in d and "negative" in d:
            a, b = nll(d["positive"]), nll(d["negative"])
            res[kind][0] += 1.0 if a < b else 0.5 if a == b else 0.0
            res[kind][1] += 1
    return {k: round(100 * v[0] / v[1], 1) for k, v in sorted(res.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--order", type=int, default=8)
    a = ap.parse_args()
    train = pl.read_parquet(f"{a.work}/inter/manifest/*.parquet", columns=["audio_path", "start", "duration"])
    bench = pl.read_parquet(f"{a.work}/bench/manifest/*.parquet",
                            columns=["audio_path", "start", "duration", "pair_id", "role", "kind"])
    tw = [audio(r) for r in train.iter_rows(named=True)]
    bw = [audio(r) for r in bench.iter_rows(named=True)]
    rng = np.random.default_rng(0)
    setups = [("spectral", {})] + [("whisper-encoder", {"layer": n}) for n in (1, 2, 3, None)]
    print("| features | k-means on | lexical | syntactic | story |\n|---|---|---:|---:|---:|")
    for name, params in setups:
        t0 = time.perf_counter()
        ext = build_features(name, **params)
        tf, bf = ext.features(tw), ext.features(bw)
        allf = np.concatenate(tf)
        sample = allf[rng.choice(len(allf), min(60_000, len(allf)), replace=False)]
        for std in (False, True):
            model = km.train(sample, a.k, seed=0, standardize=std)
            assign = Assigner(model.centroids, standardize=model.standardize)
            nll = ngram_scorer([dedup(assign(f)) for f in tf], a.order, a.k)
            pairs: dict = collections.defaultdict(dict)
            for r, f in zip(bench.iter_rows(named=True), bf):
                pairs[(r["pair_id"], r["kind"])][r["role"]] = dedup(assign(f))
            acc = accuracy(nll, pairs)
            print(f"| {ext.label} | {'z-scored' if std else 'raw'} | {acc.get('lexical')} | {acc.get('syntactic')} | "
                  f"{acc.get('story')} |", flush=True)
        print(f"<!-- {ext.label}: {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
