"""pipelines/units.yaml end to end (local executor): spectral default, and the two-line switch to a HuBERT
checkpoint (a tiny RANDOM transformers HuBERT saved to tmp_path, loaded as tokenizer=hf-hubert); inspect output."""
from __future__ import annotations

import io
import json

import pyarrow.dataset as ds
import pytest
from rich.console import Console

from slmfactory.manifests import generate as gen

pytestmark = pytest.mark.skipif(not gen.have_espeak(), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return gen.make_librispeech(tmp_path_factory.mktemp("ls") / "ls", speakers=2, utts=3)


def _run(overrides):
    from slmfactory.pipelines.runner import run_recipe

    return run_recipe("units", overrides, executor="local", console=Console(file=io.StringIO()))


def test_units_recipe_spectral(corpus, tmp_path):
    """Every segment gets units at 50 Hz, k-means is trained by the prepare hook, inspect reports the stats."""
    from slmfactory.tokenize.inspect import describe

    out = tmp_path / "units"
    res = _run({"corpus": str(corpus), "out": str(out), "k": 20, "dedup": True})
    assert res.rows == 6 and res.errors == 0
    t = ds.dataset(str(out / "manifest")).to_table()
    for col in ("units", "unit_durations", "unit_rate_hz", "tokenizer"):
        assert col in t.column_names
    rows = t.to_pylist()
    assert all(r["unit_rate_hz"] == 50.0 and r["units"] and max(r["units"]) < 20 for r in rows)
    assert all(abs(sum(r["unit_durations"]) - r["duration"] * 50) <= 1 for r in rows)
    meta = json.loads((out / "kmeans" / "spectral-L6-k20.json").read_text())
    assert meta["k"] == 20 and meta["sample_rows"] == 6
    buf = io.StringIO()
    stats = describe(t, Console(file=buf, width=120))
    assert "units / second" in buf.getvalue()
    assert 5 < stats["units_per_second"] < 50 and stats["frames_per_second"] == pytest.approx(50, abs=1)
    assert stats["distinct_units"] > 10


def test_units_recipe_hf_hubert_two_line_switch(corpus, tmp_path):
    """tokenizer + checkpoint overrides switch the same recipe to HuBERT features (k-means trained on them)."""
    from transformers import HubertConfig, HubertModel
    import torch

    torch.manual_seed(0)
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
                ).save_pretrained(tmp_path / "hf")
    out = tmp_path / "units_hf"
    res = _run({"corpus": str(corpus), "out": str(out), "k": 16, "tokenizer": "hf-hubert",
                "checkpoint": str(tmp_path / "hf"), "layer": 2})
    assert res.rows == 6 and res.errors == 0
    rows = ds.dataset(str(out / "manifest")).to_table().to_pylist()
    assert all(r["tokenizer"].startswith("hf-hubert-L2-") and max(r["units"]) < 16 for r in rows)
    assert json.loads((out / "kmeans" / "hf-hubert-L2-k16.json").read_text())["layer"] == 2
