"""Static checks of the source layout that editors and reviewers rely on (no imports, reads files only).

* Every import between our folders is an explicit relative import (``from ..manifests.schema import X``) that
  resolves to a file on disk by path alone, the way an editor or a static analyser resolves it. An absolute
  ``from slmfactory.x import`` inside the product folders resolves only through setuptools' editable-install
  hook at run time, which tools cannot follow.
* No product module grows past the size where it stops having one job.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("manifests", "stages", "tokenize", "synth", "pipelines", "slm")
MAX_LINES = 300
SOURCES = sorted(p for f in FOLDERS for p in (ROOT / f).rglob("*.py") if "__pycache__" not in p.parts)


def _resolves(module_file: Path, level: int, name: str | None) -> bool:
    base = module_file.parent
    for _ in range(level - 1):
        base = base.parent
    if base == ROOT.parent or not base.is_relative_to(ROOT):
        return False
    target = base.joinpath(*name.split(".")) if name else base
    return target.with_suffix(".py").is_file() or target.is_dir()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_between_folders_are_relative_and_resolve_by_path(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert not (node.module or "").startswith("slmfactory"), \
                    f"{path.name}:{node.lineno}: use a relative import (from ..{(node.module or '')[11:]} import ...)"
                continue
            assert _resolves(path, node.level, node.module), \
                f"{path.name}:{node.lineno}: 'from {'.' * node.level}{node.module or ''} import' resolves to no file"
            if node.module is None:  # from . import x  /  from .. import folder
                for alias in node.names:
                    assert _resolves(path, node.level, alias.name), f"{path.name}:{node.lineno}: {alias.name}?"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("slmfactory"), f"{path.name}:{node.lineno}: import {alias.name}"


def test_product_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by job): {big}"


def test_no_package_init_at_the_folder_tops():
    """A root ``tokenize/__init__.py`` would shadow the standard library's ``tokenize``."""
    assert not [f for f in FOLDERS if (ROOT / f / "__init__.py").exists()]
