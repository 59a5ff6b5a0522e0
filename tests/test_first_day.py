"""A researcher's first day (issue 14): runs chain (`corpus=OUT`), one name for the corpus, a summary that lists
every output with the next command, a non-zero exit when most rows were rejected, short clear mistakes, and a
warning when `podcasts` ignores transcripts. Audio: the generated corpora of conftest (espeak-ng) and its `bad`
corpus; every run here uses the local executor (chosen by `--executor auto` or given)."""
from __future__ import annotations

import json
import logging
import re
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from slmfactory.manifests.corpora import discover
from slmfactory.pipelines import runner as runner_mod
from slmfactory.pipelines.cli import app
from slmfactory.pipelines.executor_choice import choose_executor
from slmfactory.pipelines.recipe import RecipeError, load_recipe

cli = CliRunner()


def test_ingest_then_units_on_the_run_folder(corpora, tmp_path):
    """`root=` (the old name) still works with a note; `corpus=OUT` of a run is read as its manifest; small inputs
    run locally by default; the summary lists each output with rows and the next commands. One utterance keeps
    it quick (DNSMOS and k-means are the cost)."""
    corpus, ing, units = tmp_path / "one", tmp_path / "ing", tmp_path / "units"
    corpus.mkdir()
    for f in ("utt_00.wav", "utt_00.txt"):
        shutil.copy(corpora["folder"] / "dir0" / f, corpus / f)
    res = cli.invoke(app, ["run", "ingest", "kind=folder", f"root={corpus}", f"out={ing}"])
    assert res.exit_code == 0, res.output
    assert "old name of `corpus=`" in res.output and "executor: local" in res.output
    assert f"slmfactory run units corpus={ing}" in res.output
    assert re.search(r"manifest/\s+1 row\b", res.output) and re.search(r"errors/\s+0 rows", res.output)
    res = cli.invoke(app, ["run", "units", f"corpus={ing}", f"out={units}", "k=8", "hours=0.01"])
    assert res.exit_code == 0, res.output
    assert "reading its manifest" in res.output
    assert "kmeans/" in res.output and f"slmfactory report {units}" in res.output
    run = json.loads((units / "run.json").read_text())
    assert run["recipe"]["input"]["kind"] == "manifest" and run["executor"] == "local"
    got = pl.read_parquet(str(units / "manifest" / "*.parquet"))
    ingested = pl.read_parquet(str(ing / "manifest" / "*.parquet"))
    assert set(got["id"]) == set(ingested["id"])  # the ingest rows themselves (not the corpus again)
    assert "dnsmos_ovrl" in got.columns and "units" in got.columns  # ingest's columns kept, units added


def test_mostly_rejected_exits_3_naming_errors_and_reasons(corpora, tmp_path):
    """The `bad` corpus: 5 of its 9 inputs are rejected (by discovery and decode; decode alone finds them)."""
    recipe = tmp_path / "decode_only.yaml"
    recipe.write_text("name: decode_only\nvars: {corpus: x, out: o}\ninput: {kind: folder, root: '${corpus}'}\n"
                      "output: '${out}'\nstages: [{uses: decode}]\n")
    out = tmp_path / "bad"
    args = ["run", str(recipe), f"corpus={corpora['bad']}", f"out={out}", "--executor", "local"]
    res = cli.invoke(app, args)
    assert res.exit_code == 3, res.output
    assert "were rejected" in res.output and f"{out}/errors" in res.output and "--max-rejected" in res.output
    assert "decode:" in res.output  # a top reason, by stage
    again = cli.invoke(app, [*args, "--max-rejected", "0.9"])
    assert again.exit_code == 0, again.output  # resumed (nothing recomputed) and accepted
    assert "were rejected" not in again.output
    assert cli.invoke(app, [*args, "max_rejected=0.6"]).exit_code == 0  # the recipe key works too


def test_misspelled_kind_is_one_line_before_ray(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "_init_ray", lambda address: pytest.fail("Ray started"))
    res = cli.invoke(app, ["ingest", "librispeach", str(tmp_path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "did you mean 'librispeech'" in res.output.lower()
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()


def test_podcasts_on_a_transcribed_tree_warns(corpora, caplog):
    with caplog.at_level(logging.WARNING, logger="slmfactory"):
        items = list(discover("podcasts", str(corpora["librispeech"])))
    assert items and all(i["text"] is None for i in items)
    assert "transcripts (*.trans.txt) were ignored" in caplog.text and "kind librispeech" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="slmfactory"):
        list(discover("podcasts", str(corpora["folder"])))  # same-stem .txt transcripts
    assert "same-stem .txt transcripts were ignored" in caplog.text and "kind folder" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="slmfactory"):
        list(discover("podcasts", str(corpora["podcasts"])))
    assert "ignored" not in caplog.text


def test_auto_executor_and_the_rejected_threshold_key(corpora, monkeypatch):
    rec = load_recipe("ingest", {"kind": "folder", "corpus": str(corpora["folder"]), "max_rejected": 0.9})
    assert rec.max_rejected == 0.9 and not rec.notes
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert choose_executor(rec, "auto", None)[0] == "local"
    assert choose_executor(rec, "ray", None) == ("ray", None)  # an explicit choice is kept, silently
    rec.shard_size = 2  # more files than one shard: Ray
    assert choose_executor(rec, "auto", None)[0] == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # what `ray job submit` sets: always the cluster
    assert choose_executor(load_recipe("ingest", {"corpus": str(corpora["folder"])}), "auto", None)[0] == "ray"
    with pytest.raises(RecipeError, match="max_rejected must be a share between 0 and 1"):
        load_recipe("ingest", {"max_rejected": 2})
