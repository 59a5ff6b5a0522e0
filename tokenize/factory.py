"""Build the speech tokenizer backend named by recipe or CLI parameters, through the TOKENIZERS registry.

Why its own module: the tokenize stage and k-means training (the ``ensure_kmeans`` prepare hook and
``slmfactory kmeans train``) must build the very same feature backend from the same parameters, or the
centroids would not fit the features the stage computes. Both use this module and neither imports the other.
Why a registry: the backend is ``TOKENIZERS.load(name)``, so a new backend needs no edit here, and an unknown
name fails with the known names and the closest one.
"""
from __future__ import annotations

from typing import Any

from ..manifests.registry import TOKENIZERS
from .base import SpeechTokenizer
from .presets import preset as get_preset


def backend_class(tokenizer: str = "spectral", preset: str | None = None) -> type[SpeechTokenizer]:
    """The registered class for ``tokenizer`` (a ``preset`` names its own); unknown names raise ``UnknownName``."""
    return TOKENIZERS.load(get_preset(preset)["tokenizer"] if preset else tokenizer)


def build_backend(tokenizer: str = "spectral", preset: str | None = None, **params: Any) -> SpeechTokenizer:
    """The backend built from ``params``. A ``preset`` fixes the tokenizer and fills ``layer``/``arch`` left unset
    (the published recipe's values); parameters a backend does not take are ignored (``from_params``)."""
    if preset:
        p = get_preset(preset)
        params["layer"] = params.get("layer") or p.get("layer")
        params["arch"] = params.get("arch") or p.get("arch")
    return backend_class(tokenizer, preset).from_params(**params)


def build_features(tokenizer: str = "spectral", preset: str | None = None, **params: Any) -> SpeechTokenizer:
    """A frame-feature backend (the input of k-means), shared by the stage and k-means training."""
    cls = backend_class(tokenizer, preset)
    if not cls.needs_kmeans:
        with_features = [n for n in TOKENIZERS.names() if TOKENIZERS.load(n).needs_kmeans]
        raise ValueError(f"tokenizer={cls.name!r} has no k-means features; choose one of {', '.join(with_features)}")
    return build_backend(tokenizer, preset, **params)
