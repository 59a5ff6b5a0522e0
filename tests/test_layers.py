"""The layering and no-cycle contracts (``[tool.importlinter]`` in pyproject.toml) hold.

Why a copy: the product folders sit at the repo root and reach the ``slmfactory`` namespace through
setuptools' editable-install hook, which grimp (import-linter's graph builder) cannot walk. The test
lays the same files out as a real ``slmfactory`` package in a temporary folder and runs
``lint-imports`` on it, so what is checked is exactly the source in the working tree.
Run it alone with ``python tests/test_layers.py``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("manifests", "stages", "tokenize", "synth", "pipelines", "slm")


def lint_imports(dest: Path) -> subprocess.CompletedProcess:
    pkg = dest / "slmfactory"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, pkg / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (pkg / folder / "__init__.py").touch()  # the folders are namespace portions; grimp walks regular packages
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(dest)}
    return subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=dest, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_hold(tmp_path):
    if not Path(sys.executable).with_name("lint-imports").exists():
        pytest.fail("import-linter is not installed: `pip install -e .[test]`")
    res = lint_imports(tmp_path)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in res.stdout, res.stdout[-3000:]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        r = lint_imports(Path(d))
        print(r.stdout, r.stderr)
        sys.exit(r.returncode)
