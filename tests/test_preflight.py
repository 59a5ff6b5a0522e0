"""Pre-flight: everything a run can know before it starts fails before Ray starts (and before the output folder
or any model is touched), with "did you mean", naming the parameter: a misspelled override (`corpuss=`) exits 2
instead of silently processing the default corpus; stage typos, unknown parameters and wrong types fail at load.
No audio: every case fails before discovery. (No timing asserts: the proof is that Ray was never started.)"""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slmfactory.pipelines import runner as runner_mod
from slmfactory.pipelines.cli import app
from slmfactory.pipelines.recipe import RecipeError, load_recipe
from slmfactory.pipelines.runner import run_recipe

cli = CliRunner()


@pytest.fixture(autouse=True)
def ray_never_starts(monkeypatch):
    def boom(address):
        raise AssertionError("Ray was started before the recipe's mistakes were reported")

    monkeypatch.setattr(runner_mod, "_init_ray", boom)


CASES = [  # (recipe, overrides, what the error must say)
    ("units", {"corpuss": "/data/ls"}, r"no variable or key 'corpuss'; did you mean 'corpus'\?"),
    ("ingest", {"max_secnds": 3}, r"'max_secnds'; did you mean 'max_seconds'\?"),
    ("ingest", {"stagess.decode.batch_size": 3}, r"'stagess'; did you mean 'stages'\?"),
    ("ingest", {"stages.vad_segment.uses": "vad_segmnt"}, r"unknown stage 'vad_segmnt'.*Did you mean 'vad_segment'"),
    ("ingest", {"stages.vad_segment.params.max_secnds": 3}, r"unknown parameter 'max_secnds'.*Did you mean 'max_seconds'"),
    ("ingest", {"max_seconds": "abc"}, r"parameter 'max_seconds' must be float, got str 'abc'"),
    ("ingest", {"stages.decode.batch_size": "four"}, r"stage 'decode': batch_size must be int"),
    ("interleaved", {"finalize.0.params.context_lenght": 5}, r"unknown parameter 'context_lenght'.*'context_length'"),
    ("interleaved", {"k": "many"}, r"parameter 'num_units' must be int, got str 'many'"),
    ("units", {"shard_size": -3}, r"shard_size must be a non-negative integer"),
    ("ingest", {"kind": "librispeach"}, r"unknown corpus kind 'librispeach'. Did you mean 'librispeech'"),
    ("ingest", {"input.allow_outside_root": "yes please"}, r"parameter 'allow_outside_root' must be bool"),
    ("units", {"corpus.root": "/x"}, r"no recipe key 'corpus' \(dotted keys start at one of input"),
]


@pytest.mark.parametrize("recipe,overrides,message", CASES)
def test_mistakes_fail_before_ray_starts(recipe, overrides, message, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RecipeError, match=message):
        run_recipe(recipe, {**overrides, "out": str(out)}, executor="ray")
    assert not out.exists(), "the output folder was created before the recipe was checked"


def test_misspelled_override_exits_2_on_the_command_line(tmp_path):
    res = cli.invoke(app, ["run", "units", "corpuss=/data/ls", f"out={tmp_path / 'o'}"])
    assert res.exit_code == 2, res.output
    assert "did you mean 'corpus'" in res.output
    assert not (tmp_path / "o").exists()


def test_all_problems_are_reported_at_once(tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe("ingest", {"stages.vad_segment.params.max_secnds": 3, "stages.decode.params.target_rate": 8000,
                               "min_seconds": "short"})
    msg = str(e.value)
    for part in ("'max_secnds'", "'target_rate'", "parameter 'min_seconds' must be float"):
        assert part in msg, msg


def test_unknown_recipe_key_in_a_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: t\ninput: {kind: folder, root: /x}\noutput: o\nshard_sise: 4\nstages: [decode]\n")
    with pytest.raises(RecipeError, match=r"unknown recipe key 'shard_sise'; did you mean 'shard_size'\?"):
        load_recipe(p)


def test_required_and_well_typed_values_pass(tmp_path):
    """The shipped defaults and ordinary overrides (an int where a float is declared, null for optional) pass."""
    r = load_recipe("ingest", {"max_seconds": 8, "min_seconds": 0.5, "out": str(tmp_path)})
    assert r.stages[1].params["max_seconds"] == 8
    load_recipe("units", {"checkpoint": None, "k": 50, "precision": "fp32"})
