"""K-means over frame features: train with faiss, save as .npy + JSON, import published centroids.

Why faiss: fairseq's learn_kmeans.py (sklearn MiniBatchKMeans, n_init 20, max_iter 150) takes minutes to
hours; faiss Lloyd iterations are BLAS/GPU GEMMs (see bench/bench_tokenize.py (b)). Why .npy + JSON: centroids
are plain data; a pickle would run code on load. Published fairseq/textlesslib k-means files *are* joblib
pickles, so ``import_sklearn`` opens one only with an explicit ``allow_pickle=True`` and converts it once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import kmeans_sample
from .base import file_hash
from .factory import build_features

log = logging.getLogger("slmfactory.tokenize")
FAIRSEQ_SEED = 1369  # fairseq learn_kmeans.py default


@dataclass
class KMeansModel:
    centroids: np.ndarray  # (k, dim) float32
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def save(self, prefix: str | os.PathLike) -> Path:
        """Write ``PREFIX.npy`` and ``PREFIX.json``; returns the .npy path."""
        npy, js = paths(prefix)
        npy.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, k=self.k, dim=self.dim, centroids_sha1=array_hash(self.centroids))
        # atomic (temporary file + rename): a kill or a full disk never leaves a 0-byte .npy behind
        _atomic(npy, lambda f: np.save(f, np.ascontiguousarray(self.centroids, dtype=np.float32), allow_pickle=False))
        _atomic(js, lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode()))
        return npy

    @property
    def standardize(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mean, std)`` per feature dimension when the centroids live in standardized space, else None."""
        z = self.meta.get("standardize")
        return (np.asarray(z["mean"], np.float64), np.asarray(z["std"], np.float64)) if z else None

    @property
    def short_hash(self) -> str:
        """Centroids (and the feature scaling, when there is one): the same centroids with another scaling
        give other units, so the tokenizer label must differ."""
        if self.standardize is None:
            return array_hash(self.centroids)[:8]
        mean, std = self.standardize
        return array_hash(np.concatenate([self.centroids.ravel(), mean, std]))[:8]


def paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    p = str(prefix)
    for ext in (".npy", ".json"):
        if p.endswith(ext):
            p = p[: -len(ext)]
    return Path(p + ".npy"), Path(p + ".json")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb", buffering=0) as f:  # unbuffered: fsync sees every byte
        write(f)
        os.fsync(f.fileno())
    os.replace(tmp, path)


def exists(prefix: str | os.PathLike) -> bool:
    return paths(prefix)[0].exists()


def broken(prefix: str | os.PathLike) -> str | None:
    """Why the saved centroids at ``prefix`` are unusable (empty, truncated, not matching their JSON), or None."""
    try:
        model = load(prefix)
        js = paths(prefix)[1]
        want = json.loads(js.read_text()).get("centroids_sha1") if js.exists() else None
    except (ValueError, EOFError, OSError) as e:  # JSONDecodeError is a ValueError
        return f"{type(e).__name__}: {e}"
    if want and want != array_hash(model.centroids):
        return "the centroids do not match the checksum in their JSON file"
    return None


def load(prefix: str | os.PathLike) -> KMeansModel:
    npy, js = paths(prefix)
    if not npy.exists():
        raise FileNotFoundError(f"{npy}: k-means centroids not found; train them with `slmfactory kmeans train "
                                f"... -o {str(npy)[:-4]}` or import published ones with `slmfactory kmeans import`")
    c = np.load(npy, allow_pickle=False)
    meta = json.loads(js.read_text()) if js.exists() else {}
    if c.ndim != 2:
        raise ValueError(f"{npy}: expected a (k, dim) array of centroids, got shape {c.shape}")
    model = KMeansModel(c.astype(np.float32, copy=False), meta)
    d = model.dim
    try:  # a hand-edited or foreign scaler would silently give other units (or NaN distances) in the assigner
        z = model.standardize
        ok = z is None or (all(v.shape == (d,) and np.isfinite(v).all() for v in z) and bool((z[1] > 0).all()))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{js}: 'standardize' must hold {d} finite means and {d} positive stds (one per feature "
                         f"dimension); train the k-means again (`slmfactory kmeans train`) or delete that key")
    return model


def array_hash(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def kmeans_pp(x: np.ndarray, k: int, seed: int, max_points: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding (as sklearn, 2 + log k candidates per step) on at most ``max_points`` frames.

    Why: faiss seeds with k random frames, which on HuBERT features ends ~1% above the inertia of fairseq's
    sklearn recipe (k-means++, best of 20); seeding with k-means++ closes that gap for one extra O(n k d) pass.
    """
    import torch

    rng = np.random.default_rng(seed)
    max_points = max_points or max(10_000, 20 * k)  # seeding cost is O(max_points * k * d * log k)
    if x.shape[0] > max_points:
        x = x[np.sort(rng.choice(x.shape[0], max_points, replace=False))]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    n, trials = xt.shape[0], 2 + int(np.log(k))
    x_sq = (xt * xt).sum(1)

    def sqdist(c: torch.Tensor) -> torch.Tensor:  # (m, d) -> (m, n)
        return (x_sq[None, :] - 2 * c @ xt.T + (c * c).sum(1)[:, None]).clamp_min_(0)

    chosen = [int(rng.integers(n))]
    d2 = sqdist(xt[chosen])[0]
    for _ in range(1, k):
        p = d2.double().cpu().numpy()
        total = p.sum()
        cand = rng.choice(n, trials, p=p / total) if total > 0 else rng.choice(n, trials)
        new = torch.minimum(d2[None, :], sqdist(xt[torch.as_tensor(cand, device=dev)]))
        best = int(new.sum(1).argmin())
        chosen.append(int(cand[best]))
        d2 = new[best]
    return xt[chosen].cpu().numpy()


def train(feats: np.ndarray, k: int, niter: int = 25, seed: int = FAIRSEQ_SEED, max_points_per_centroid: int = 256,
          nredo: int = 1, gpu: bool | None = None, meta: dict[str, Any] | None = None,
          init: str = "k-means++", standardize: bool = False) -> KMeansModel:
    """Fit k centroids with faiss. faiss subsamples to ``max_points_per_centroid * k`` points (256 by default);
    raise it to use every sampled frame. ``init``: ``k-means++`` (default, see :func:`kmeans_pp`) or ``random``
    (faiss' own; with ``nredo`` restarts). ``gpu=None`` uses a GPU when faiss was built with one.

    ``standardize``: cluster z-scored features (per-dimension mean/std of the sample, stored in the JSON, applied
    by the assigner). Why: raw MFCC+delta k-means clusters mostly by loudness (the low cepstra have ~10x the
    spread of the deltas); measured in docs/tokenize.md. HuBERT layers are clustered raw, as fairseq does."""
    import faiss

    x = np.ascontiguousarray(feats, dtype=np.float32)
    scale = None
    if standardize and x.ndim == 2 and x.shape[0]:
        mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
        std = np.where(std > 1e-8, std, 1.0)  # a constant dimension stays as it is
        x = np.ascontiguousarray((x - mean) / std, dtype=np.float32)
        scale = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    if x.ndim != 2 or x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} feature frames, got {x.shape[0] if x.ndim == 2 else x.shape}; "
                         f"sample more audio (--hours) or lower -k")
    use_gpu = (faiss.get_num_gpus() > 0) if gpu is None else gpu
    t0 = time.perf_counter()
    if x.shape[0] < 39 * k:
        log.warning("k-means: %d frames for k=%d (< 39 per centroid); centroids will be noisy, sample more hours",
                    x.shape[0], k)
    if init not in ("k-means++", "random"):
        raise ValueError(f"init={init!r}: choose k-means++ or random")
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, max_points_per_centroid=max_points_per_centroid,
                      min_points_per_centroid=1, nredo=1 if init == "k-means++" else nredo, gpu=bool(use_gpu),
                      verbose=False, spherical=False)
    km.train(x, init_centroids=kmeans_pp(x, k, seed) if init == "k-means++" else None)
    secs = time.perf_counter() - t0
    inertia = float(km.obj[-1]) if len(km.obj) else float("nan")
    info = dict(meta or {}, k=k, niter=niter, seed=seed, max_points_per_centroid=max_points_per_centroid,
                nredo=nredo if init == "random" else 1, init=init, frames=int(x.shape[0]),
                train_seconds=round(secs, 3), faiss_inertia=inertia,
                trainer="faiss", **({"standardize": scale} if scale else {}))
    return KMeansModel(km.centroids.astype(np.float32), info)


def inertia(feats: np.ndarray, centroids: np.ndarray, standardize: tuple | None = None) -> float:
    """Sum of squared distances of every frame to its nearest centroid (what k-means minimises), in the space
    the centroids live in (``standardize``: a model's ``(mean, std)``, as ``KMeansModel.standardize`` gives)."""
    from .assign import Assigner

    x = feats.astype(np.float64) if standardize is None else (feats - standardize[0]) / standardize[1]
    diff = x - centroids[Assigner(centroids)(x)].astype(np.float64)
    return float((diff * diff).sum())


def import_sklearn(path: str | os.PathLike, allow_pickle: bool = False, meta: dict[str, Any] | None = None) -> KMeansModel:
    """Read a fairseq/textlesslib k-means model (a joblib pickle of sklearn KMeans/MiniBatchKMeans).

    Unpickling executes code from the file: only do it for files from a source you trust, once, and keep the
    converted .npy + JSON. Refuses unless ``allow_pickle`` is True.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: k-means model not found")
    if p.suffix == ".npy":
        c = np.load(p, allow_pickle=False)
        return KMeansModel(c.astype(np.float32), dict(meta or {}, imported_from=str(p), source_sha1=file_hash(p)))
    if not allow_pickle:
        raise PermissionError(f"{p} is a pickle (joblib/sklearn); loading it runs code stored in the file. If you "
                              f"trust its source, re-run with --allow-pickle to convert it once to .npy + JSON")
    warnings.warn(f"unpickling {p}: this executes code from the file; only do this for trusted published models",
                  stacklevel=2)
    try:
        import joblib  # ships with scikit-learn, which the pickled KMeans object needs anyway
    except ImportError as e:
        raise ImportError(f"{p}: reading a fairseq/sklearn k-means file needs scikit-learn: "
                          f"pip install 'scikit-learn>=1.4'") from e
    obj = joblib.load(p)
    c = getattr(obj, "cluster_centers_", None)
    if c is None:
        raise ValueError(f"{p}: unpickled a {type(obj).__name__}, which has no cluster_centers_; expected an "
                         f"sklearn (MiniBatch)KMeans as written by fairseq's learn_kmeans.py")
    return KMeansModel(np.asarray(c, dtype=np.float32),
                       dict(meta or {}, imported_from=str(p), source_sha1=file_hash(p), trainer=type(obj).__name__))


# --- sampling features from a corpus (tokenize/kmeans_sample.py) ------------------------------------
collect_features = kmeans_sample.collect_features


def train_from_rows(rows: Iterable[dict[str, Any]], extractor, k: int, hours: float = 1.0, seed: int = FAIRSEQ_SEED,
                    max_points_per_centroid: int = 256, niter: int = 25, extra_meta: dict | None = None,
                    init: str = "k-means++", crop_seconds: float | None = 30.0,
                    extractor_params: dict[str, Any] | None = None, standardize: bool | str = "auto") -> KMeansModel:
    """Sample ``hours`` of spans, extract features (as Ray work when Ray is up and ``extractor_params`` can rebuild
    the extractor there), fit k-means. Unreadable files are skipped with a warning."""
    stats: dict[str, int] = {}
    picked = kmeans_sample.sample_spans(rows, hours, seed, crop_seconds, stats)
    if extractor_params is not None and kmeans_sample.ray_running():
        feats, where = kmeans_sample.ray_features(picked, extractor_params), "ray"
    else:
        feats, where = collect_features(extractor, kmeans_sample.span_audio(picked)), "local"
    meta = dict(extra_meta or {}, features=extractor.label, frame_rate_hz=extractor.frame_rate_hz,
                sample_hours=round(sum(r["duration"] for r in picked) / 3600, 4), sample_rows=len(picked),
                sample_skipped=stats.get("skipped", 0), sample_crop_seconds=crop_seconds, features_on=where)
    return train(feats, k, niter=niter, seed=seed, max_points_per_centroid=max_points_per_centroid, meta=meta,
                 init=init, standardize=wants_standardize(standardize, extractor))


def wants_standardize(standardize: bool | str, extractor) -> bool:
    """``auto``: standardize weight-free spectral features (their dimensions differ ~10x in spread), not neural
    layers (published HuBERT/TWIST k-means are fitted on raw features)."""
    value = str(standardize).lower()
    if value not in ("auto", "true", "false", "yes", "no", "1", "0"):
        raise ValueError(f"standardize={standardize!r}: choose auto, true or false")
    return getattr(extractor, "name", "") == "spectral" if value == "auto" else value in ("true", "yes", "1")


def ensure_kmeans(ctx, kmeans: str, k: int = 100, hours: float = 1.0, seed: int = FAIRSEQ_SEED,
                  max_points_per_centroid: int = 256, crop_seconds: float | None = 30.0,
                  standardize: bool | str = "auto", **extractor_params) -> str:
    """Recipe ``prepare`` hook: train ``kmeans`` (a path prefix) from a sample of the run's input unless it exists.
    ``extractor_params`` (tokenizer, checkpoint, layer, ...) go through the stage's own factory, so the centroids
    fit the features the stage computes; give the stage the same ``kmeans`` path (``${out}/kmeans/spectral-k100``)."""
    k, hours, seed, max_points_per_centroid = int(k), float(hours), int(seed), int(max_points_per_centroid)
    prefix = Path(kmeans)
    if exists(prefix):
        why = broken(prefix)
        if why is None:
            log.info("k-means %s exists; not retraining", prefix)
            return str(prefix)
        log.warning("k-means %s is unusable (%s); training it again", prefix, why)
    extractor = build_features(**extractor_params)
    model = train_from_rows(ctx.iter_input(), extractor, k=k, hours=hours, seed=seed,
                            max_points_per_centroid=max_points_per_centroid, extra_meta=extractor_meta(extractor),
                            crop_seconds=crop_seconds, extractor_params=extractor_params, standardize=standardize)
    model.save(prefix)
    log.info("k-means: trained k=%d on %d frames -> %s.npy", k, model.meta.get("frames", 0), prefix)
    return str(prefix)


def extractor_meta(extractor) -> dict[str, Any]:
    return {k: v for k, v in getattr(extractor, "meta", {}).items()}
