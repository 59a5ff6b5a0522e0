"""YAML recipes: load, substitute ``${vars}``, apply ``key=value`` overrides, validate.

Why this small: a recipe is data. We never evaluate it; values are YAML scalars, ``${name}`` refers
to ``vars`` (or an override of the same name), and dotted overrides address nested keys, with stage
entries addressed by their ``name`` (or ``uses``): ``stages.tokenize.params.kmeans=path``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..manifests.registry import UnknownName
from .registry import stage_name

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PACKAGED = Path(__file__).resolve().parent


class RecipeError(ValueError):
    """A recipe that cannot run, with the file and the key at fault."""


@dataclass
class StageSpec:
    name: str
    uses: str
    params: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    concurrency: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class HookSpec:
    uses: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recipe:
    name: str
    path: str
    raw: dict[str, Any]
    input: dict[str, Any]
    output: str
    stages: list[StageSpec]
    prepare: list[HookSpec]
    finalize: list[HookSpec]
    shard_size: int = 32
    seed: int = 0

    def fingerprint(self) -> str:
        """Hash of everything that changes outputs (stages, input, seed), for resume checks."""
        keep = {k: self.raw.get(k) for k in ("input", "stages", "seed", "shard_size", "prepare")}
        return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_recipe(name_or_path: str) -> Path:
    """A path, or the name of a recipe shipped in ``pipelines/`` (``units`` -> pipelines/units.yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    for cand in (PACKAGED / name_or_path, PACKAGED / f"{name_or_path}.yaml", PACKAGED / p.name):
        if cand.exists():
            return cand
    known = ", ".join(sorted(x.stem for x in PACKAGED.glob("*.yaml")))
    raise RecipeError(f"recipe {name_or_path!r} not found; give a YAML path or one of: {known}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"override {item!r} is not key=value (e.g. output=out/run1 or corpus=/data/ls)")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if v.strip() else ""
    return out


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    path = find_recipe(str(path))
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with input/output/stages")
    overrides = dict(overrides or {})
    vars_ = dict(raw.pop("vars", {}) or {})
    for k in list(overrides):
        if "." not in k and (k in vars_ or k not in raw):
            vars_[k] = overrides.pop(k)
    for _ in range(len(vars_) + 1):  # vars may refer to vars: resolve until nothing changes
        resolved = {k: _substitute(v, {**vars_}, path) for k, v in vars_.items()}
        if resolved == vars_:
            break
        vars_ = resolved
    raw = _substitute(raw, vars_, path)
    for k, v in overrides.items():
        _set_dotted(raw, k, v, path)
    left = _VAR.search(json.dumps(raw, default=str))
    if left:
        raise RecipeError(f"{path}: {left.group(0)} is still unresolved (a cycle between vars?)")
    return _build(raw, str(path))


def _substitute(obj: Any, vars_: dict[str, Any], path: Path) -> Any:
    if isinstance(obj, dict):
        return {k: _substitute(v, vars_, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, vars_, path) for v in obj]
    if isinstance(obj, str):
        m = _VAR.fullmatch(obj)
        if m:  # a whole-value reference keeps the variable's type
            return _lookup(m.group(1), vars_, path)
        return _VAR.sub(lambda mm: str(_lookup(mm.group(1), vars_, path)), obj)
    return obj


def _lookup(name: str, vars_: dict[str, Any], path: Path) -> Any:
    if name not in vars_:
        raise RecipeError(f"{path}: ${{{name}}} is not defined; add it under vars: or pass {name}=VALUE")
    return vars_[name]


def _set_dotted(raw: dict[str, Any], key: str, value: Any, path: Path) -> None:
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _pick_stage(node, part, key, path)
            continue
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        raise RecipeError(f"override {key}: cannot replace a whole stage")
    node[last] = value


def _pick_stage(items: list[Any], part: str, key: str, path: Path) -> Any:
    for it in items:
        if isinstance(it, dict) and part in (it.get("name"), it.get("uses")):
            return it
    if part.isdigit() and int(part) < len(items):
        return items[int(part)]
    names = [it.get("name") or it.get("uses") for it in items if isinstance(it, dict)]
    raise RecipeError(f"override {key}: no stage named {part!r} in {path}; stages are {names}")


def _build(raw: dict[str, Any], path: str) -> Recipe:
    for key in ("input", "output", "stages"):
        if key not in raw:
            raise RecipeError(f"{path}: missing required key {key!r}")
    stages = []
    seen: set[str] = set()
    for i, st in enumerate(raw["stages"] or []):
        if isinstance(st, str):
            st = {"uses": st}
        if not isinstance(st, dict) or "uses" not in st:
            raise RecipeError(f"{path}: stage #{i} needs 'uses: <stage name or module:Class>'")
        name = str(st.get("name") or st["uses"])
        if name in seen:
            raise RecipeError(f"{path}: two stages are named {name!r}; give one a distinct 'name:'")
        seen.add(name)
        try:
            stage_name(str(st["uses"]))
        except UnknownName as e:  # fail at load time, before Ray starts or a prepare hook trains anything
            raise RecipeError(f"{path}: stage {name!r}: {e}") from e
        unknown = set(st) - {"name", "uses", "params", "batch_size", "concurrency", "num_cpus", "num_gpus"}
        if unknown:
            raise RecipeError(f"{path}: stage {name!r} has unknown keys {sorted(unknown)}")
        stages.append(StageSpec(name=name, uses=str(st["uses"]), params=dict(st.get("params") or {}),
                                batch_size=st.get("batch_size"), concurrency=st.get("concurrency"),
                                num_cpus=float(st.get("num_cpus", 1.0)), num_gpus=float(st.get("num_gpus", 0.0))))
    hooks = {k: [HookSpec(uses=str(h["uses"]), params=dict(h.get("params") or {})) for h in (raw.get(k) or [])]
             for k in ("prepare", "finalize")}
    inp = raw["input"]
    if not isinstance(inp, dict) or "kind" not in inp:
        raise RecipeError(f"{path}: input needs a 'kind' (a corpus recipe like librispeech, or manifest)")
    return Recipe(name=str(raw.get("name") or Path(path).stem), path=path, raw=copy.deepcopy(raw), input=dict(inp),
                  output=str(raw["output"]), stages=stages, prepare=hooks["prepare"], finalize=hooks["finalize"],
                  shard_size=int(raw.get("shard_size", 32)), seed=int(raw.get("seed", 0)))
