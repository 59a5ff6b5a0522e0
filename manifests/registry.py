"""One registry style for every pluggable family: short name -> ``module:Class``, found by reading source.

Why: recipes and the CLI name corpus kinds, stages and backends by short names, and the help text, the
"did you mean" errors and the list of choices must come from one place that a contributor never edits.
A family is a base class name plus the folders to look in. Every class in those folders that derives
from the base (directly or through another member) and sets a string ``name = "..."`` is a member under
that name. So adding a corpus, a stage or a backend is one module (its class) plus one test.

Why by reading source (``ast``) instead of importing: ``slmfactory --help`` and a recipe check must not
import torch, transformers or Ray just to list names; the module is imported only when a member is used.
Only classes in our own folders can be members: a recipe can never name an arbitrary importable object.
"""
from __future__ import annotations

import ast
import difflib
import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds manifests/, stages/, ... as slmfactory.*


class UnknownName(KeyError, ValueError):
    """A name that is not registered in a family; the message lists the known ones and the closest match."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "slmfactory.stages.asr:AsrStage"
    summary: str  # first line of the class docstring


@dataclass(frozen=True)
class Family:
    title: str  # what a member is called in messages: "stage", "corpus kind", "ASR backend"
    base: str  # class name every member derives from
    folders: tuple[str, ...]  # folders (relative to the slmfactory package) whose modules are scanned

    def entries(self) -> dict[str, Entry]:
        return _scan(self.base, self.folders)

    def names(self) -> list[str]:
        return sorted(self.entries())

    def entry(self, name: str) -> Entry:
        found = self.entries().get(name)
        if found is None:
            raise UnknownName(self.unknown_message(name))
        return found

    def load(self, name: str) -> Any:
        """The member class itself (imports its module now, and only it)."""
        mod, _, attr = self.entry(name).target.partition(":")
        return getattr(importlib.import_module(mod), attr)

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.title} {name!r}.{hint} Known: {', '.join(known)}."

    def help(self) -> str:
        """One line per member: ``name: summary`` (CLI help and docs are built from this)."""
        return "\n".join(f"{e.name}: {e.summary}" for e in sorted(self.entries().values(), key=lambda e: e.name))


@lru_cache(maxsize=None)
def _scan(base: str, folders: tuple[str, ...]) -> dict[str, Entry]:
    classes: dict[str, tuple[str, list[str], str | None, str]] = {}  # class -> (module, bases, name, summary)
    for folder in folders:
        for path in sorted((PACKAGE_ROOT / folder).rglob("*.py")):
            module = "slmfactory." + ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    bases = [b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                             if isinstance(b, (ast.Name, ast.Attribute))]
                    doc = (ast.get_docstring(node) or "").strip().splitlines()
                    classes[f"{module}:{node.name}"] = (module, bases, _literal_name(node), doc[0] if doc else "")
    members: set[str] = set()
    by_class = {k.rsplit(":", 1)[1]: k for k in classes}
    grew = True
    while grew:  # members are subclasses of the base, directly or through other members
        grew = False
        for key, (_, bases, _, _) in classes.items():
            if key not in members and any(b == base or by_class.get(b) in members for b in bases):
                members.add(key)
                grew = True
    out: dict[str, Entry] = {}
    for key in sorted(members):
        _, _, name, summary = classes[key]
        if name is None:  # an abstract helper class without a name of its own
            continue
        if name in out:
            raise RuntimeError(f"two classes register the {base} name {name!r}: {out[name].target} and {key}")
        out[name] = Entry(name, key, summary)
    return out


def _literal_name(node: ast.ClassDef) -> str | None:
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "name" for t in stmt.targets):
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "name":
            value = stmt.value
        else:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


# --- the families (members are found in these folders; nothing else to edit when adding one) ---------------
STAGES = Family("stage", "Stage", ("stages", "tokenize", "synth"))
CORPORA = Family("corpus kind", "Corpus", ("manifests",))
TOKENIZERS = Family("speech tokenizer", "SpeechTokenizer", ("tokenize",))
ASR_BACKENDS = Family("ASR backend", "AsrBackend", ("stages",))
ALIGNERS = Family("aligner", "Aligner", ("stages",))
LLM_BACKENDS = Family("LLM backend", "LlmBackend", ("synth",))
TTS_BACKENDS = Family("TTS backend", "TtsBackend", ("synth",))
