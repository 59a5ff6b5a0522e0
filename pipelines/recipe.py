"""YAML recipes: load, substitute ``${vars}``, apply ``key=value`` overrides, validate.

Why this small: a recipe is data. We never evaluate it; values are YAML scalars, ``${name}`` refers
to ``vars`` (or an override of the same name), and dotted overrides address nested keys, with stage
entries addressed by their ``name`` (or ``uses``): ``stages.tokenize.params.kmeans=path``.

Pre-flight: everything a run can know before it starts is checked here, before Ray starts (``pipelines/
registry.py`` holds what may be named): unknown variables, override keys and recipe keys (with "did you
mean"), stage and hook names, parameters against each stage's and hook's signature, their types, backend
names and ``api_key_env``. All problems are reported at once.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..manifests.registry import CORPORA, UnknownName
from .chain import apply_aliases, chain_run_folder
from .registry import check_backends, check_params, hook_target, load_code, resolve, stage_name, user_allow_code

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PACKAGED = Path(__file__).resolve().parent
TOP_KEYS = ("name", "vars", "input", "output", "shard_size", "seed", "prepare", "finalize", "stages", "max_rejected")
MAX_REJECTED = 0.5  # default: warn and exit 3 when more than half of the rows were rejected
STAGE_KEYS = {"name": (str,), "uses": (str,), "params": (dict,), "batch_size": (int,), "concurrency": (int,),
              "num_cpus": (int, float), "num_gpus": (int, float), "resources": (dict,)}


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
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources: pins a stage to node types
    allowed: bool = False  # ``uses`` is code the user allowed (--allow-code), not a registered stage


@dataclass
class HookSpec:
    uses: str  # module:function, from registry.HOOKS or allowed by the user
    params: dict[str, Any] = field(default_factory=dict)
    allowed: bool = False


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
    allow_code: tuple[str, ...] = ()
    max_rejected: float = MAX_REJECTED  # share of rejected rows above which the CLI warns and exits 3
    notes: list[str] = field(default_factory=list)  # said once before the run (deprecated names, corpus=OUT)

    def fingerprint(self) -> str:
        """Hash of everything in the recipe that changes outputs (stages, input, seed), for resume checks.
        Path-like values count as absolute paths: the same run given relative or absolute paths matches.
        (The artefacts those paths name are hashed by ``shards.run_fingerprint``.)"""
        keep = {k: self.raw.get(k) for k in ("input", "stages", "seed", "shard_size", "prepare")}
        return hashlib.sha1(json.dumps(_norm_paths(keep), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _norm_paths(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _norm_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_norm_paths(v) for v in obj]
    if isinstance(obj, str) and "://" not in obj and ("/" in obj or os.path.isfile(obj)):  # not `uses: tokenize`
        return os.path.abspath(os.path.expanduser(obj))
    return obj


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


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None,
                allow_code: list[str] | tuple[str, ...] | None = None) -> Recipe:
    """Load, substitute, override and check a recipe. ``allow_code``: ``module:Name`` targets the user allows
    besides the registered stages and hooks (plus ``allow_code:`` of the user config, never of the recipe)."""
    path = find_recipe(str(path))
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with input/output/stages")
    if "allow_code" in raw:
        raise RecipeError(f"{path}: allow_code is not read from a recipe (a recipe cannot allow its own code); "
                          f"pass --allow-code module:Name or list it under allow_code: in your user config")
    _no_unknown(list(raw), TOP_KEYS, f"{path}: unknown recipe key", "")
    overrides = dict(overrides or {})
    vars_ = dict(raw.pop("vars", {}) or {})
    notes: list[str] = []
    apply_aliases(vars_, overrides, notes)
    for k in list(overrides):
        if "." not in k and k in vars_:
            vars_[k] = overrides.pop(k)
        elif "." in k:  # a dotted key starts at a recipe key
            _no_unknown([k.split(".")[0]], [*TOP_KEYS[:1], *TOP_KEYS[2:]], f"override {k}: {path} has no recipe key",
                        f" (dotted keys start at one of {', '.join(TOP_KEYS[2:])})")
        else:  # a plain key is a variable or a recipe key
            _no_unknown([k], [*vars_, *TOP_KEYS[:1], *TOP_KEYS[2:]],
                        f"override {k}={overrides[k]!r}: {path} has no variable or key",
                        f" (variables: {', '.join(vars_) or 'none'})")
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
    chain_run_folder(raw, notes)
    allow = tuple(dict.fromkeys([*(allow_code or ()), *user_allow_code()]))
    return _build(raw, str(path), allow, notes)


def _no_unknown(keys: list[str], known: Any, what: str, tail: str) -> None:
    for k in keys:
        if k not in known:
            close = difflib.get_close_matches(str(k), [str(x) for x in known], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"{what} {k!r}{hint}{tail}")


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


def _build(raw: dict[str, Any], path: str, allow: tuple[str, ...] = (), notes: list[str] | None = None) -> Recipe:
    for key in ("input", "output", "stages"):
        if key not in raw:
            raise RecipeError(f"{path}: missing required key {key!r}")
    problems: list[str] = []
    stages = [s for i, st in enumerate(raw["stages"] or []) if (s := _stage(i, st, path, allow, problems))]
    names = [s.name for s in stages]
    problems += [f"two stages are named {n!r}; give one a distinct 'name:'" for n in sorted(set(names))
                 if names.count(n) > 1]
    hooks: dict[str, list[HookSpec]] = {"prepare": [], "finalize": []}
    for k in hooks:
        for h in raw.get(k) or []:
            h = {"uses": h} if isinstance(h, str) else h
            if not isinstance(h, dict) or not isinstance(h.get("uses"), str) or not isinstance(h.get("params") or {},
                                                                                                dict):
                problems.append(f"{k} hook {h!r} needs 'uses: <hook>' and optional 'params: {{...}}'")
                continue
            try:
                target, allowed = hook_target(h["uses"], allow)
                params = dict(h.get("params") or {})
                problems += check_params(load_code(target), params, f"{k} hook {h['uses']!r}", skip_first=True)
                hooks[k].append(HookSpec(uses=target, params=params, allowed=allowed))
            except (UnknownName, ImportError, AttributeError) as e:
                problems.append(f"{k}: {e}")
    inp = raw["input"]
    if not isinstance(inp, dict) or "kind" not in inp:
        problems.append("input needs a 'kind' (a corpus recipe like librispeech, or manifest)")
    else:
        try:
            corpus = CORPORA.load(str(inp["kind"]))
            opts = {k: v for k, v in inp.items() if k not in ("kind", "root", "options", corpus.root_key)}
            problems += check_params(corpus.discover, {**opts, **(inp.get("options") or {})},
                                     f"input kind {inp['kind']!r}", skip_first=True)
        except UnknownName as e:
            problems.append(f"input: {e}")
    for key, typ in (("shard_size", int), ("seed", int)):
        if key in raw and (not isinstance(raw[key], typ) or isinstance(raw[key], bool) or raw[key] < 0):
            problems.append(f"{key} must be a non-negative integer, got {raw[key]!r}")
    mr = raw.get("max_rejected", MAX_REJECTED)
    if not isinstance(mr, (int, float)) or isinstance(mr, bool) or not 0 <= mr <= 1:
        problems.append(f"max_rejected must be a share between 0 and 1 (0.9 = warn above 90% rejected), got {mr!r}")
    if not isinstance(raw["output"], (str, Path)) or not str(raw["output"]):
        problems.append(f"output must be a folder path, got {raw['output']!r}")
    if problems:
        raise RecipeError(f"{path}: " + ("\n  ".join(["", *problems]) if len(problems) > 1 else problems[0]))
    for key in ("root", "path"):  # normalized: the same run with relative or absolute paths is the same run
        if isinstance(inp.get(key), str) and os.path.exists(inp[key]):
            inp[key] = os.path.abspath(inp[key])
    return Recipe(name=str(raw.get("name") or Path(path).stem), path=path, raw=copy.deepcopy(raw), input=dict(inp),
                  output=os.path.expanduser(str(raw["output"])), stages=stages,
                  prepare=hooks["prepare"], finalize=hooks["finalize"], shard_size=max(1, int(raw.get("shard_size", 32))),
                  seed=int(raw.get("seed", 0)), allow_code=allow, max_rejected=float(mr),
                  notes=list(notes or []))


def _stage(i: int, st: Any, path: str, allow: tuple[str, ...], problems: list[str]) -> StageSpec | None:
    st = {"uses": st} if isinstance(st, str) else st
    if not isinstance(st, dict) or not isinstance(st.get("uses"), str):
        problems.append(f"stage #{i} needs 'uses: <stage name or module:Class>'")
        return None
    name = str(st.get("name") or st["uses"])
    what = f"stage {name!r}"
    unknown = sorted(set(st) - set(STAGE_KEYS))
    if unknown:
        problems.append(f"{what} has unknown keys {unknown} (a stage takes {', '.join(STAGE_KEYS)})")
    for k, types in STAGE_KEYS.items():
        v = st.get(k)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool) or (k not in (
                "params", "resources", "name", "uses") and v < 0)):
            problems.append(f"{what}: {k} must be {' or '.join(t.__name__ for t in types)}"
                            f"{' >= 0' if types[0] in (int,) else ''}, got {v!r}")
            return None
    allowed = st["uses"] in allow
    try:
        cls = load_code(st["uses"]) if allowed else resolve(st["uses"])
        short = st["uses"] if allowed else stage_name(st["uses"])
    except (UnknownName, ImportError, AttributeError) as e:  # before Ray starts or a prepare hook trains anything
        problems.append(f"{what}: {e}")
        return None
    params = dict(st.get("params") or {})
    problems += check_params(cls.__init__, params, what) + check_backends(short, params, what)
    return StageSpec(name=name, uses=st["uses"], params=params, batch_size=st.get("batch_size"),
                     concurrency=st.get("concurrency"), num_cpus=float(st.get("num_cpus", 1.0)),
                     num_gpus=float(st.get("num_gpus", 0.0)), allowed=allowed,
                     resources={str(k): float(v) for k, v in (st.get("resources") or {}).items()})
