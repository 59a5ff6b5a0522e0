"""Runs that chain: one name for the corpus everywhere, and any run folder is a valid corpus.

Why: a researcher's second command reads the first one's output. Every shipped recipe names its input
``corpus`` (the ingest recipe's old ``root`` still works, with a one-line note), and ``corpus=OUT`` where
``OUT`` holds an earlier run (``manifest/`` + ``run.json``) is read as the ``manifest`` kind, so
``slmfactory run units corpus=out/ingest`` continues from the ingest run without
``kind=manifest input.path=OUT``. Both happen while the recipe loads, before anything starts, and each
leaves a note the console prints (``Recipe.notes``).
"""
from __future__ import annotations

from typing import Any

VAR_ALIASES = {"root": "corpus"}  # old variable name -> the name every shipped recipe uses now


def apply_aliases(vars_: dict[str, Any], overrides: dict[str, Any], notes: list[str]) -> None:
    """Rename deprecated variable overrides (``root=``) to the recipe's current name (``corpus=``), in place."""
    for old, new in VAR_ALIASES.items():
        if old in overrides and old not in vars_ and new in vars_:
            overrides[new] = overrides.pop(old)
            notes.append(f"`{old}=` is the old name of `{new}=`; it still works, but write {new}=... "
                         f"(one name for the corpus in every recipe)")


def chain_run_folder(raw: dict[str, Any], notes: list[str]) -> None:
    """Read ``input.root`` as an earlier run's manifest when it is a run folder (in place).

    Only a corpus-layout input changes: ``kind: manifest`` already reads run folders, and a root that is
    not a run folder (a corpus tree, a JSONL file) is left to its kind.
    """
    from ..manifests.run_manifest import is_run_folder

    inp = raw.get("input")
    if not isinstance(inp, dict) or inp.get("kind") == "manifest":
        return
    root = inp.get("root")
    if not isinstance(root, str) or not is_run_folder(root):
        return
    raw["input"] = {"kind": "manifest", "path": root}
    notes.append(f"{root} is the output folder of an earlier run: reading its manifest (kind manifest, every "
                 f"column kept) instead of a {inp.get('kind')} corpus")
