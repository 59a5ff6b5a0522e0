"""Run-length dedup, vocabulary offset and unit BPE (sentencepiece trained in tmp_path by the test)."""
from __future__ import annotations

import numpy as np

from slmfactory.tokenize import postprocess as pp


def test_dedup_expand_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        u = rng.integers(0, 4, rng.integers(0, 60)).astype(np.int32)
        d_u, d = pp.dedup(u)
        assert d.sum() == len(u) and np.array_equal(pp.expand(d_u, d), u)
        assert (d_u[1:] != d_u[:-1]).all()
    assert [x.tolist() for x in pp.dedup([5, 5, 5, 7, 7, 5])] == [[5, 7, 5], [3, 2, 1]]


def test_offset_and_names():
    assert pp.offset([0, 3], 32000).tolist() == [32000, 32003]
    assert pp.unit_token_names(3) == ["<unit_0>", "<unit_1>", "<unit_2>"]


def test_bpe_train_apply_roundtrip_and_shortens(tmp_path):
    """Trained on unit strings with repeated motifs, BPE shortens sequences and decodes back exactly, also for
    units never seen in training (every unit id is a required character)."""
    rng = np.random.default_rng(0)
    motifs = [rng.integers(0, 50, 4) for _ in range(10)]
    seqs = [np.concatenate([motifs[i] for i in rng.integers(0, 10, 30)]) for _ in range(100)]
    model = pp.train_bpe(seqs, tmp_path / "bpe", vocab_size=120, k=60)
    bpe = pp.UnitBPE(model)
    ids = bpe.encode(seqs[0])
    assert len(ids) < 0.6 * len(seqs[0])
    assert bpe.decode(ids) == seqs[0].tolist()
    unseen = [55, 59, 55, 0]
    assert bpe.decode(bpe.encode(unseen)) == unseen
    again = pp.UnitBPE(pp.train_bpe(seqs, tmp_path / "bpe2", vocab_size=120, k=60))
    assert again.encode(seqs[1]) == bpe.encode(seqs[1])
