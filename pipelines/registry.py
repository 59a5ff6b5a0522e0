"""What recipes may name: registered stages, hooks and backends, plus the column inspectors.

Why one resolver (the trust model, see the README): a recipe and a command-line override are data. ``uses:
tokenize`` (or the stage's exact ``module:Class``) resolves only to a class registered in our stage folders, a
``prepare``/``finalize`` hook only to a function listed in ``HOOKS``, a backend parameter only to a member of
its family, and ``api_key_env`` only to a variable the backend declares. Anything else is refused, with the
known names and the closest match, before Ray starts or a hook runs - unless the user (never the recipe) allows
that exact ``module:Name`` with ``--allow-code`` or ``allow_code:`` in the user config (``user_allow_code``).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from ..manifests.registry import (ALIGNERS, ASR_BACKENDS, LLM_BACKENDS, STAGES, TOKENIZERS, TTS_BACKENDS, Family,
                                  UnknownName)

# column present in a table -> "module:function(table, console)" that `slmfactory inspect` calls
INSPECTORS: dict[str, str] = {
    "units": "slmfactory.tokenize.inspect:describe",
    "tokens": "slmfactory.stages.inspect:describe",
    "messages": "slmfactory.synth.inspect:describe",
}

# the driver-side hooks recipes may name (short name -> module:function); a new hook is one line here
HOOKS: dict[str, str] = {
    "ensure_kmeans": "slmfactory.tokenize.kmeans:ensure_kmeans",
    "train_text_tokenizer": "slmfactory.stages.texttok:train_text_tokenizer",
    "pack_shards": "slmfactory.stages.pack:pack_shards",
    "export": "slmfactory.synth.recipes:export",
    "extend_templates": "slmfactory.synth.recipes:extend_templates",
}

# stage -> {parameter: family} for parameters that name a backend; nested ``llm: {backend: ...}`` mappings are
# checked against LLM_BACKENDS wherever they appear
BACKEND_PARAMS: dict[str, dict[str, Family]] = {
    "asr": {"backend": ASR_BACKENDS}, "align": {"backend": ALIGNERS}, "tts": {"backend": TTS_BACKENDS},
    "tokenize": {"tokenizer": TOKENIZERS},
}
# environment variables any backend may read as its API key (documented in the README "Trust model")
API_KEY_PREFIX = "SLMFACTORY_"
CONFIG_ENV = "SLMFACTORY_CONFIG"  # the user config file (default ~/.config/slmfactory/config.yaml)


class NotAllowed(UnknownName):
    """A recipe or an override names code that is neither registered nor allowed by the user."""


def stage_name(name: str) -> str:
    """The registered short name for ``name`` (a short name or its exact ``module:Class``), without importing
    the stage: the recipe loader checks every ``uses`` this way before Ray starts or a model loads."""
    if ":" in name:
        by_target = {e.target: e.name for e in STAGES.entries().values()}
        if name not in by_target:
            raise NotAllowed(f"{name!r} is not a registered stage class; recipes may name only registered stages "
                             f"({', '.join(STAGES.names())}), or code the user allows with --allow-code {name}")
        return by_target[name]
    return STAGES.entry(name).name


def resolve(name: str) -> Any:
    """A registered stage name, or its exact ``module:Class`` -> the class. Raises with the known names."""
    return STAGES.load(stage_name(name))


def hook_target(name: str, allow_code: Iterable[str] = ()) -> tuple[str, bool]:
    """``(module:function, allowed_by_user)`` for a hook a recipe names; refuses anything not in HOOKS."""
    if name in HOOKS:
        return HOOKS[name], False
    if name in HOOKS.values():
        return name, False
    if name in set(allow_code):
        return name, True
    known = sorted(HOOKS)
    close = difflib.get_close_matches(name, known + list(HOOKS.values()), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise NotAllowed(f"hook {name!r} is not a registered hook.{hint} Known: {', '.join(known)}. Other code runs "
                     f"only if you allow it: --allow-code {name} (or allow_code: in your user config)")


def load_code(target: str) -> Any:
    """Import ``module:Name`` (a hook from HOOKS, or code the user allowed)."""
    if ":" not in target:
        raise NotAllowed(f"{target!r} must be 'package.module:Name'")
    mod, attr = target.split(":", 1)
    return getattr(importlib.import_module(mod), attr)


def user_allow_code() -> list[str]:
    """``allow_code:`` of the user config (``$SLMFACTORY_CONFIG`` or ~/.config/slmfactory/config.yaml)."""
    import yaml

    path = Path(os.environ.get(CONFIG_ENV) or Path.home() / ".config" / "slmfactory" / "config.yaml")
    if not path.is_file():
        return []
    cfg = yaml.safe_load(path.read_text()) or {}
    items = (cfg.get("allow_code") or []) if isinstance(cfg, dict) else []
    return [items] if isinstance(items, str) else [str(x) for x in items]


# --- parameters against signatures (pre-flight, before Ray starts) ---------------------------------------
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
                                       "list": (list, tuple), "dict": (dict,), "tuple": (list, tuple)}


def check_params(fn: Callable[..., Any], params: dict[str, Any], what: str, skip_first: bool = False) -> list[str]:
    """Problems of ``params`` against ``fn``'s signature: unknown names (with "did you mean"), missing required
    ones, and values whose type the annotation rules out, each naming the parameter."""
    sig = inspect.signature(fn)
    ps = [p for p in sig.parameters.values() if p.name != "self"][1 if skip_first else 0:]
    named = {p.name: p for p in ps if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in ps)
    problems = []
    for k, v in params.items():
        if k not in named:
            if not open_ended:
                close = difflib.get_close_matches(k, list(named), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                problems.append(f"{what}: unknown parameter {k!r}.{hint} It takes: {', '.join(named) or 'none'}")
            continue
        want = _allowed_types(named[k].annotation)
        if want is not None and not _fits(v, want):
            problems.append(f"{what}: parameter {k!r} must be {named[k].annotation}, got "
                            f"{type(v).__name__} {v!r:.60}")
    for p in named.values():
        if p.default is p.empty and p.name not in params:
            problems.append(f"{what}: parameter {p.name!r} is required")
    return problems


def _allowed_types(ann: Any) -> list[Any] | None:
    """``'float | None'`` -> [float types, None]; None when the annotation says nothing we can check."""
    if ann is inspect.Parameter.empty or not isinstance(ann, str):
        return None
    parts, depth, cur = [], 0, ""
    for ch in ann:  # split on top-level "|"
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    out: list[Any] = []
    for part in parts + [cur]:
        part = part.strip()
        if part.startswith("Optional[") and part.endswith("]"):
            inner = _allowed_types(part[9:-1])
            if inner is None:
                return None
            out += inner + [None]
            continue
        base = part.split("[")[0].strip()
        if base == "None":
            out.append(None)
        elif base in _TYPES:
            out.append(_TYPES[base])
        else:
            return None  # Any, a class of ours, a Literal...: not checked here
    return out


def _fits(v: Any, want: list[Any]) -> bool:
    for w in want:
        if w is None and v is None:
            return True
        if w is not None and isinstance(v, w) and not (isinstance(v, bool) and bool not in w):
            return True
    return False


def check_backends(stage: str, params: dict[str, Any], what: str) -> list[str]:
    """Backend names in a stage's parameters must be registered members of their family."""
    problems = []
    for key, family in BACKEND_PARAMS.get(stage, {}).items():
        v = params.get(key)
        if isinstance(v, str) and v not in family.names():
            problems.append(f"{what}: parameter {key!r}: {family.unknown_message(v)}")
    for key, d in _mappings(params, ""):
        if key == "llm" and isinstance(d.get("backend"), str) and d["backend"] not in LLM_BACKENDS.names():
            problems.append(f"{what}: llm backend: {LLM_BACKENDS.unknown_message(d['backend'])}")
        elif "api_key_env" in d:
            problems += _check_key_env(d, what)
    return problems


def _check_key_env(d: dict[str, Any], what: str) -> list[str]:
    env = d["api_key_env"]
    if env in (None, ""):
        return []
    backend = d.get("backend", "transformers")
    cls = LLM_BACKENDS.load(backend) if backend in LLM_BACKENDS.names() else None
    declared = set(getattr(cls, "API_KEY_ENVS", ()))
    default = inspect.signature(cls.__init__).parameters.get("api_key_env") if cls else None
    if default is not None and isinstance(default.default, str):
        declared.add(default.default)
    if isinstance(env, str) and (env in declared or env.startswith(API_KEY_PREFIX)):
        return []
    names = ", ".join(sorted(declared)) or "none"
    return [f"{what}: api_key_env {env!r} is not a variable the {backend!r} backend declares ({names}); "
            f"put the key in one of those or in a variable named {API_KEY_PREFIX}*"]


def _mappings(obj: Any, key: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """Every mapping inside ``obj`` with the key it sits under."""
    if isinstance(obj, dict):
        yield key, obj
        for k, v in obj.items():
            yield from _mappings(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _mappings(v, key)
