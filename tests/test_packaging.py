"""The wheel must contain every Python folder of the product, mapped under `slmfactory.`.

pyproject.toml lists the packages by hand (package-dir mapping); a new subfolder that is not listed
would silently be missing from installs. This builds a real wheel and compares it with the disk.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("manifests", "stages", "tokenize", "synth", "pipelines", "slm")


def _folders_on_disk() -> set[str]:
    found = set()
    for top in PRODUCT:
        for d in [REPO / top, *[p for p in (REPO / top).rglob("*") if p.is_dir()]]:
            if "__pycache__" in d.parts or not any(d.glob("*.py")):
                continue
            rel = d.relative_to(REPO).as_posix().replace("/", ".")
            found.add(f"slmfactory.{rel}")
    return found


def test_pyproject_lists_every_folder():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = _folders_on_disk()
    assert on_disk - listed == set(), f"add these to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    for top in PRODUCT:
        assert cfg["package-dir"][f"slmfactory.{top}"] == top


def test_built_wheel_contains_every_folder(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("slmfactory-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {"/".join(n.split("/")[:-1]).replace("/", ".") for n in names if n.endswith(".py")}
    assert _folders_on_disk() - in_wheel == set()
    assert not any(n.startswith("tokenize/") for n in names), "tokenize/ must only ship as slmfactory/tokenize"
    assert any(n.startswith("slmfactory/pipelines/") and n.endswith("ingest.yaml") for n in names), \
        "recipes must ship with the package"
