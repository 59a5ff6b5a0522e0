"""k-means training/assignment/import, the ensure_kmeans prepare hook and the `kmeans`/`bpe` CLI verbs."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from slmfactory.manifests import generate as gen
from slmfactory.tokenize import kmeans as km
from slmfactory.tokenize.assign import Assigner
from slmfactory.pipelines.cli_tokenize import register


def _blobs(n=3000, d=16, k=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, d)).astype(np.float32)
    lab = rng.integers(0, k, n)
    return (centers[lab] + rng.normal(0, 0.5, (n, d))).astype(np.float32), centers, lab


def test_assign_matches_bruteforce():
    """The GEMM/argmin assignment equals an explicit nearest-centroid search, chunked or not."""
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=(5000, 32)).astype(np.float32), rng.normal(size=(100, 32)).astype(np.float32)
    ref = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(Assigner(c)(x), ref)
    assert np.array_equal(Assigner(c, chunk_frames=777)(x), ref)
    parts = Assigner(c).split([x[:10], x[10:10], x[10:]])
    assert [len(p) for p in parts] == [10, 0, 4990] and np.array_equal(np.concatenate(parts), ref)


def test_train_recovers_clusters_and_is_seeded():
    """faiss seeded by k-means++ finds well-separated blobs (faiss' random seeding needs restarts for that);
    same seed -> same centroids."""
    x, centers, lab = _blobs()
    a, b = km.train(x, 8, seed=3), km.train(x, 8, seed=3)
    assert np.array_equal(a.centroids, b.centroids) and a.meta["init"] == "k-means++"
    for m in (a, km.train(x, 8, seed=3, init="random", nredo=20)):
        found = Assigner(m.centroids)(x)
        # every true cluster maps to exactly one found cluster
        assert all(len(set(found[lab == j])) == 1 for j in range(8))
        assert km.inertia(x, m.centroids) < 0.3 * x.shape[0] * x.shape[1]
    one_random = km.train(x, 8, seed=3, init="random", nredo=1)
    assert km.inertia(x, a.centroids) <= km.inertia(x, one_random.centroids) * 1.0001
    with pytest.raises(ValueError, match="at least k"):
        km.train(x[:5], 8)


def test_standardized_kmeans_clusters_by_every_dimension(tmp_path):
    """Two dimensions carry the clusters with a small spread; one loud dimension carries noise 30x larger. Raw
    k-means splits the loud noise; standardized k-means (stored mean/std, applied by the assigner) finds the
    clusters, survives save/load, and gets its own tokenizer hash."""
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, 4000)
    grid = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    x = np.concatenate([grid[lab] + rng.normal(0, 0.05, (4000, 2)), rng.normal(0, 30, (4000, 1))], 1).astype(np.float32)

    def purity(units):
        return np.mean([np.bincount(units[lab == j]).max() / (lab == j).sum() for j in range(4)])

    raw = km.train(x, 4, seed=0)
    z = km.train(x, 4, seed=0, standardize=True)
    assert raw.standardize is None and z.standardize is not None
    assert purity(Assigner(raw.centroids)(x)) < 0.7
    assert purity(Assigner(z.centroids, standardize=z.standardize)(x)) > 0.99
    assert km.inertia(x, z.centroids, z.standardize) < km.inertia(x, raw.centroids, z.standardize)
    z.save(tmp_path / "z")
    again = km.load(tmp_path / "z")
    assert np.array_equal(Assigner(again.centroids, standardize=again.standardize)(x),
                          Assigner(z.centroids, standardize=z.standardize)(x))
    assert again.short_hash == z.short_hash != km.KMeansModel(z.centroids).short_hash
    spectral, hubert = type("S", (), {"name": "spectral"})(), type("H", (), {"name": "hubert"})()
    assert km.wants_standardize("auto", spectral) and not km.wants_standardize("auto", hubert)
    assert not km.wants_standardize("false", spectral)
    with pytest.raises(ValueError, match="auto, true or false"):
        km.wants_standardize("maybe", spectral)


@pytest.mark.parametrize("edit", [{"std": [1.0, 0.0, 1.0]}, {"mean": [0.0, float("nan"), 0.0]},
                                  {"mean": [0.0, 0.0]}, {"std": "x"}])
def test_a_broken_scaler_is_named_not_applied(tmp_path, edit):
    """A hand-edited scaler (zero std, NaN mean, wrong length, not numbers) would give other units or NaN
    distances; load refuses it naming the JSON, broken() reports it so ensure_kmeans trains again."""
    x = np.random.default_rng(0).normal(0, 1, (400, 3)).astype(np.float32)
    km.train(x, 4, seed=0, standardize=True).save(tmp_path / "z")
    js = tmp_path / "z.json"
    meta = json.loads(js.read_text())
    meta["standardize"].update(edit)
    js.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="z.json.*'standardize'"):
        km.load(tmp_path / "z")
    assert "standardize" in km.broken(tmp_path / "z")


def test_import_sklearn_requires_allow_pickle(tmp_path):
    """A joblib-pickled sklearn KMeans (the fairseq format) is refused without allow_pickle, converted with it.
    The model is fitted by the test on random blobs and saved to tmp_path."""
    import joblib
    from sklearn.cluster import MiniBatchKMeans

    x, _, _ = _blobs(n=500, k=4)
    skm = MiniBatchKMeans(4, n_init=1, random_state=0).fit(x)
    path = tmp_path / "km.bin"
    joblib.dump(skm, path)
    with pytest.raises(PermissionError, match="allow-pickle"):
        km.import_sklearn(path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = km.import_sklearn(path, allow_pickle=True)
    assert any("unpickling" in str(i.message) for i in w)
    assert np.allclose(m.centroids, skm.cluster_centers_)
    m.save(tmp_path / "conv")
    assert np.allclose(km.load(tmp_path / "conv").centroids, skm.cluster_centers_)


class _Ctx:
    def __init__(self, rows, out_dir):
        self.rows, self.out_dir = rows, out_dir

    def iter_input(self):
        yield from self.rows


@pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")
def test_ensure_kmeans_trains_once(tmp_path):
    """The prepare hook trains spectral centroids from the input audio (skipping a bad file) and then reuses them."""
    corpus = gen.make_folder(tmp_path / "corpus", n=4)
    rows = [{"audio_path": str(p), "start": 0.0, "duration": None} for p in sorted(corpus.rglob("*.wav"))]
    rows.append({"audio_path": str(tmp_path / "missing.wav"), "start": 0.0, "duration": None})
    prefix = tmp_path / "out" / "km" / "spectral-k20"
    got = km.ensure_kmeans(_Ctx(rows, tmp_path / "out"), str(prefix), k=20, seed=0, tokenizer="spectral")
    assert got == str(prefix) and km.exists(prefix)
    meta = json.loads((tmp_path / "out" / "km" / "spectral-k20.json").read_text())
    assert meta["k"] == 20 and meta["sample_rows"] == 4 and meta["sample_skipped"] == 1 and meta["frames"] > 100
    before = (tmp_path / "out" / "km" / "spectral-k20.npy").stat().st_mtime_ns
    km.ensure_kmeans(_Ctx([], tmp_path / "out"), str(prefix), k=20)  # no input needed the second time
    assert (tmp_path / "out" / "km" / "spectral-k20.npy").stat().st_mtime_ns == before


@pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")
def test_cli_kmeans_train_import_and_bpe(tmp_path):
    """`kmeans train` on a folder and on a Parquet manifest, `kmeans import` refusing a pickle, `bpe train`."""
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    corpus = gen.make_librispeech(tmp_path / "ls", speakers=2, utts=2)
    r = runner.invoke(app, ["kmeans", "train", str(corpus), "-k", "16", "-o", str(tmp_path / "a"), "--seed", "0"])
    assert r.exit_code == 0, r.output
    assert km.load(tmp_path / "a").k == 16
    wavs = sorted(str(p) for p in corpus.rglob("*.flac"))
    pq.write_table(pa.table({"audio_path": wavs, "start": [0.0] * 4, "duration": [None] * 4,
                             "units": [[1, 1, 2, 3, 3, 3, 4] * 5] * 4}), tmp_path / "m.parquet")
    r = runner.invoke(app, ["kmeans", "train", "--manifest", str(tmp_path / "m.parquet"), "-k", "8",
                            "--max-points-per-centroid", "1000", "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert km.load(tmp_path / "b").meta["max_points_per_centroid"] == 1000
    (tmp_path / "x.pkl").write_bytes(b"not really")
    r = runner.invoke(app, ["kmeans", "import", str(tmp_path / "x.pkl"), "-o", str(tmp_path / "c")])
    assert r.exit_code == 2 and not km.exists(tmp_path / "c")
    r = runner.invoke(app, ["bpe", "train", "--manifest", str(tmp_path / "m.parquet"), "--vocab-size", "8",
                            "-o", str(tmp_path / "bpe")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "bpe.model").exists()
