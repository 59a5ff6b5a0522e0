"""The trust model: a recipe and a command-line override may name only registered stages, hooks and backends;
``subprocess:Popen`` and friends are refused from a file and from the command line BEFORE anything runs (no
file created, Ray never started); other code runs only when the user allows it (``--allow-code`` or the user
config, never the recipe); ``api_key_env`` only names variables the backend declares.
Audio: generated folder corpus (espeak-ng) for the one run that executes an allowed hook."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slmfactory.pipelines import runner as runner_mod
from slmfactory.pipelines.cli import app
from slmfactory.pipelines.recipe import RecipeError, load_recipe
from slmfactory.pipelines.runner import run_recipe

cli = CliRunner()
HOSTILE = ["subprocess:Popen", "subprocess:run", "os:system", "builtins:exec", "importlib:import_module"]


@pytest.fixture(autouse=True)
def no_ray_no_user_config(monkeypatch, tmp_path):
    """Starting Ray fails the test: every refusal must come before it. The user config is the test's own."""
    started = []
    monkeypatch.setattr(runner_mod, "_init_ray", lambda address: started.append(address))
    monkeypatch.setenv("SLMFACTORY_CONFIG", str(tmp_path / "no_config.yaml"))
    return started


def _recipe(tmp_path, stages: str, extra: str = "") -> str:
    p = tmp_path / "r.yaml"
    p.write_text(f"name: t\nvars: {{root: {tmp_path}, out: {tmp_path / 'out'}}}\n"
                 f"input: {{kind: folder, root: '${{root}}'}}\noutput: '${{out}}'\nstages:\n{stages}\n{extra}")
    return str(p)


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_stage_in_recipe_file_is_refused_before_anything_runs(tmp_path, target, no_ray_no_user_config):
    pwned = tmp_path / "PWNED"
    path = _recipe(tmp_path, f"  - uses: '{target}'\n    params: {{args: 'touch {pwned}', shell: true}}")
    with pytest.raises(RecipeError, match="not a registered stage class"):
        run_recipe(path, executor="ray")
    assert not pwned.exists() and no_ray_no_user_config == []
    assert not (tmp_path / "out").exists(), "the output folder was touched before the recipe was checked"


def test_hostile_stage_from_the_command_line_is_refused(tmp_path, no_ray_no_user_config):
    pwned = tmp_path / "PWNED"
    res = cli.invoke(app, ["run", "ingest", f"root={tmp_path}", f"out={tmp_path / 'out'}",
                           f"stages.decode.params={{args: 'touch {pwned}', shell: true}}",
                           "stages.decode.uses=subprocess:Popen"])
    assert res.exit_code == 2, res.output
    assert "not a registered stage class" in res.output
    assert not pwned.exists() and no_ray_no_user_config == []


@pytest.mark.parametrize("where", ["prepare", "finalize"])
def test_hostile_hook_is_refused_from_file_and_command_line(tmp_path, where, no_ray_no_user_config):
    pwned = tmp_path / "PWNED"
    hook = f"{{uses: 'subprocess:Popen', params: {{args: 'touch {pwned}', shell: true}}}}"
    with pytest.raises(RecipeError, match="not a registered hook"):
        run_recipe(_recipe(tmp_path, "  - {uses: decode}", f"{where}:\n  - {hook}"), executor="ray")
    res = cli.invoke(app, ["run", "ingest", f"root={tmp_path}", f"out={tmp_path / 'out'}", f"{where}=[{hook}]"])
    assert res.exit_code == 2 and "not a registered hook" in res.output, res.output
    assert not pwned.exists() and no_ray_no_user_config == []


def test_registered_names_still_load(tmp_path):
    r = load_recipe(_recipe(tmp_path, "  - {uses: 'slmfactory.stages.decode:DecodeStage'}",
                            "prepare:\n  - {uses: ensure_kmeans, params: {kmeans: x, k: 4}}"))
    assert r.stages[0].allowed is False and r.prepare[0].uses == "slmfactory.tokenize.kmeans:ensure_kmeans"


def test_a_recipe_cannot_allow_its_own_code(tmp_path):
    with pytest.raises(RecipeError, match="allow_code is not read from a recipe"):
        load_recipe(_recipe(tmp_path, "  - {uses: 'os:getcwd'}", "allow_code: ['os:getcwd']"))


@pytest.fixture
def my_hook(tmp_path, monkeypatch):
    (tmp_path / "mymod_trust.py").write_text(
        "from pathlib import Path\n\ndef mark(ctx, path):\n    Path(path).write_text(ctx.recipe.name)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mymod_trust:mark"


def test_allow_code_from_the_user_runs_that_exact_hook(corpora, tmp_path, my_hook, monkeypatch):
    marker = tmp_path / "ran"
    path = _recipe(tmp_path, "  - {uses: decode}", f"prepare:\n  - {{uses: '{my_hook}', params: {{path: {marker}}}}}")
    with pytest.raises(RecipeError, match="allow-code mymod_trust:mark"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="not a registered hook"):  # allowing one name allows nothing else
        load_recipe(path, allow_code=["mymod_trust:other"])
    assert load_recipe(path, allow_code=[my_hook]).prepare[0].allowed
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"allow_code: ['{my_hook}']\n")
    monkeypatch.setenv("SLMFACTORY_CONFIG", str(cfg))
    assert load_recipe(path).prepare[0].allowed  # the user config allows it too
    monkeypatch.setenv("SLMFACTORY_CONFIG", str(tmp_path / "none.yaml"))
    res = cli.invoke(app, ["run", path, f"root={corpora['folder']}", f"out={tmp_path / 'o'}", "--executor", "local",
                           "--allow-code", my_hook])
    assert res.exit_code == 0, res.output
    assert marker.read_text() == "t"


def test_api_key_env_only_names_the_backend_declares(tmp_path):
    def llm(env):
        return {"llm": {"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "m", "api_key_env": env}}

    for env in ("AWS_SECRET_ACCESS_KEY", "HOME", "GITHUB_TOKEN"):
        with pytest.raises(RecipeError, match=f"api_key_env '{env}' is not a variable the 'openai' backend declares"):
            load_recipe("synth_sqa", llm(env))
    for env in ("OPENAI_API_KEY", "SLMFACTORY_MY_ENDPOINT_KEY", None):
        load_recipe("synth_sqa", llm(env))


def test_backend_names_are_registered_members(tmp_path):
    with pytest.raises(RecipeError, match="unknown ASR backend 'whisperr'"):
        load_recipe("interleaved", {"asr": "whisperr"})
    with pytest.raises(RecipeError, match="unknown LLM backend 'subprocess'"):
        load_recipe("synth_sqa", {"llm": {"backend": "subprocess"}})
    with pytest.raises(RecipeError, match="unknown speech tokenizer"):
        load_recipe("units", {"tokenizer": "os"})
