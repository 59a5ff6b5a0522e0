"""The CLI teaches (--help) and fails clearly on bad arguments; ingest runs through it.
Audio: generated folder corpus (espeak-ng)."""
from __future__ import annotations

import os

import polars as pl
from typer.testing import CliRunner

from slmfactory.pipelines.cli import app

runner = CliRunner()


def test_help_lists_every_verb():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for verb in ("ingest", "run", "inspect", "export", "demo", "corpus"):
        assert verb in res.output


def test_ingest_help_names_the_corpus_kinds():
    res = runner.invoke(app, ["ingest", "--help"])
    assert res.exit_code == 0 and "librilight" in res.output and "podcasts" in res.output


def test_missing_root_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["ingest", "folder", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no such file or folder" in res.output


def test_unknown_recipe_lists_the_shipped_ones(tmp_path):
    res = runner.invoke(app, ["run", "no_such_recipe", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "ingest" in res.output


def test_bad_override_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["run", "ingest", "oops"])
    assert res.exit_code == 2 and "key=value" in res.output


def test_ingest_through_the_cli_prints_a_summary(corpora, tmp_path):
    out = tmp_path / "o"
    res = runner.invoke(app, ["ingest", "folder", str(corpora["folder"]), "-o", str(out), "--executor", "local"])
    assert res.exit_code == 0, res.output
    assert "good rows" in res.output
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    assert man.height == 4 and man["text"].null_count() == 0


def test_verbose_flag_and_exit_codes_are_documented(monkeypatch):
    monkeypatch.setenv("SLMFACTORY_VERBOSE", "0")  # restored after the test
    res = runner.invoke(app, ["--help"])
    assert "--verbose" in res.output and "Exit codes" in res.output and "3" in res.output
    res = runner.invoke(app, ["-v", "corpus", "kinds"])
    assert res.exit_code == 0 and "librispeech" in res.output
    assert os.environ["SLMFACTORY_VERBOSE"] == "1"
