"""Recipe loading: variables, dotted overrides, clear errors. No audio needed."""
from __future__ import annotations

import pytest

from slmfactory.pipelines.recipe import RecipeError, load_recipe, parse_overrides


def _write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


BASE = """
name: t
vars: {root: /data, out: o, maxs: 20.0}
input: {kind: folder, root: "${root}"}
output: "${out}/run"
stages:
  - {uses: decode}
  - {name: seg, uses: vad_segment, params: {max_seconds: "${maxs}"}}
"""


def test_vars_keep_types_and_overrides_apply(tmp_path):
    r = load_recipe(_write(tmp_path, BASE), {"maxs": 8.5, "out": "x", "stages.seg.params.min_seconds": 2})
    assert r.input["root"] == "/data" and r.output == "x/run"
    seg = r.stages[1]
    assert seg.params == {"max_seconds": 8.5, "min_seconds": 2}
    assert isinstance(seg.params["max_seconds"], float)


def test_fingerprint_changes_with_stage_params_not_with_output(tmp_path):
    p = _write(tmp_path, BASE)
    a, b, c = load_recipe(p), load_recipe(p, {"out": "elsewhere"}), load_recipe(p, {"maxs": 3.0})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_undefined_variable_names_itself(tmp_path):
    with pytest.raises(RecipeError, match=r"\$\{nope\}"):
        load_recipe(_write(tmp_path, BASE.replace("${root}", "${nope}")))


def test_unknown_stage_in_override(tmp_path):
    with pytest.raises(RecipeError, match="no stage named 'tok'"):
        load_recipe(_write(tmp_path, BASE), {"stages.tok.params.k": 1})


def test_unknown_stage_key_and_duplicate_names(tmp_path):
    with pytest.raises(RecipeError, match="unknown keys"):
        load_recipe(_write(tmp_path, BASE.replace("{uses: decode}", "{uses: decode, gpus: 1}")))
    with pytest.raises(RecipeError, match="two stages"):
        load_recipe(_write(tmp_path, BASE.replace("name: seg, ", "name: decode, ")))


def test_parse_overrides_uses_yaml_scalars():
    assert parse_overrides(["a=1", "b=true", "c=x/y", "d=[1, 2]"]) == {"a": 1, "b": True, "c": "x/y", "d": [1, 2]}
    with pytest.raises(RecipeError):
        parse_overrides(["novalue"])


def test_shipped_recipes_all_load():
    from slmfactory.pipelines.recipe import PACKAGED
    from slmfactory.pipelines.registry import resolve

    names = sorted(p.stem for p in PACKAGED.glob("*.yaml"))
    assert "ingest" in names
    for n in names:
        r = load_recipe(n)
        for st in r.stages:
            assert callable(resolve(st.uses)), f"{n}: stage {st.uses} does not resolve"


def test_vars_may_refer_to_vars_and_cycles_fail(tmp_path):
    text = BASE.replace("vars: {root: /data, out: o, maxs: 20.0}",
                        "vars: {root: /data, out: o, maxs: 20.0, km: '${out}/kmeans'}").replace(
        "params: {max_seconds: \"${maxs}\"}", "params: {max_seconds: \"${maxs}\", mode: \"${km}\"}")
    r = load_recipe(_write(tmp_path, text), {"out": "elsewhere"})
    assert r.stages[1].params["mode"] == "elsewhere/kmeans"
    cyc = text.replace("out: o,", "out: '${km}',")
    with pytest.raises(RecipeError, match="unresolved"):
        load_recipe(_write(tmp_path, cyc))


def test_unknown_stage_fails_at_load_with_did_you_mean(tmp_path):
    """Checked when the recipe is read (no Ray, no model): the error names the stage and the closest name."""
    with pytest.raises(RecipeError, match=r"stage 'seg'.*unknown stage 'vad_segmnt'.*Did you mean 'vad_segment'"):
        load_recipe(_write(tmp_path, BASE.replace("uses: vad_segment", "uses: vad_segmnt")))
    with pytest.raises(RecipeError, match="not a registered stage class"):
        load_recipe(_write(tmp_path, BASE.replace("{uses: decode}", "{uses: 'os:getcwd'}")))
