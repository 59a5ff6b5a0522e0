"""`import tokenize` must stay the standard library's module, wherever Python runs from.

Our `tokenize/` folder is importable only as `slmfactory.tokenize`. A `tokenize/__init__.py` at the
repo root would shadow the stdlib (inspect, linecache and pytest plugins import it) - these three
tests fail if that ever happens: from the repo root, under pytest, and in a Ray worker whose
working_dir is the repo.
"""
from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _is_stdlib(path: str) -> bool:
    return Path(path).resolve().parent == STDLIB


def test_no_init_at_top_of_product_folders():
    for folder in ("tokenize", "stages", "synth", "manifests", "pipelines", "slm"):
        assert not (REPO / folder / "__init__.py").exists(), f"{folder}/__init__.py would shadow or mislead imports"


def test_stdlib_tokenize_from_repo_root():
    code = ("import tokenize, inspect, json; import slmfactory.tokenize as t; "
            "print(json.dumps([tokenize.__file__, hasattr(tokenize, 'generate_tokens'), list(t.__path__)[0]]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    import json

    tok_file, has_gen, ours = json.loads(out.stdout.strip().splitlines()[-1])
    assert _is_stdlib(tok_file), tok_file
    assert has_gen
    assert Path(ours).resolve() == (REPO / "tokenize").resolve()


def test_stdlib_tokenize_under_pytest():
    import inspect
    import tokenize

    assert _is_stdlib(tokenize.__file__), tokenize.__file__
    # inspect uses tokenize under the hood: this crashes if tokenize is shadowed
    assert "def test_stdlib_tokenize_under_pytest" in inspect.getsource(test_stdlib_tokenize_under_pytest)


RAY_PROBE = """
import json, os, sys, ray
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
         runtime_env={"working_dir": sys.argv[1],
                      "excludes": [".venv", ".git", ".cache", "demo_out", "out", "*.parquet", "*.flac", "*.wav"]})

@ray.remote
def probe():
    import tokenize, inspect
    import slmfactory.tokenize
    inspect.getsource(json.dumps)  # inspect tokenizes source: crashes when tokenize is shadowed
    return [tokenize.__file__, os.getcwd(), sorted(os.listdir(".")), list(slmfactory.tokenize.__path__)]

print("RESULT" + json.dumps(ray.get(probe.remote(), timeout=180)))
ray.shutdown()
"""


def test_stdlib_tokenize_in_ray_worker_with_repo_working_dir(tmp_path):
    """A separate local Ray (address='local') whose job-level working_dir is the repo."""
    import json

    script = tmp_path / "probe.py"
    script.write_text(RAY_PROBE)
    out = subprocess.run([sys.executable, str(script), str(REPO)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, f"probe failed: {out.stderr[-2000:]}"
    tok_file, cwd, listing, ours = json.loads(line[0][len("RESULT"):])
    assert "tokenize" in listing and "pipelines" in listing, "working_dir was not the repo"
    assert _is_stdlib(tok_file), f"worker imported {tok_file} as tokenize"
    assert ours, "slmfactory.tokenize not importable in the worker"


def test_no_script_shadows_a_stdlib_module():
    """`python bench/x.py` puts bench/ first on sys.path: a bench/tokenize.py there would replace the
    stdlib tokenize for every import (linecache, inspect, dataclasses) and crash the script."""
    for folder in ("bench", "tests", "."):
        for py in (REPO / folder).glob("*.py"):
            assert py.stem not in sys.stdlib_module_names, f"{py.relative_to(REPO)} shadows the stdlib module {py.stem}"
