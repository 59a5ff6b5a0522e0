"""Corpus recipes: ``kind`` -> a lazy ``discover(root, **opts)`` that lists a corpus's inputs.

Why a registry: the runner (``input: {kind: librispeech, root: ...}``) and the CLI's help text need the
kinds by name; each recipe lives in its own module with a docstring describing the layout it expects.
Discovery lists files and reads transcripts/metadata only (no audio decoding) and yields bad inputs
already rejected, so nothing is silently dropped. See :mod:`slmfactory.manifests.discovery` for the item
shape.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from . import folder, hf, jsonl, librilight, librispeech, lhotse_io, podcasts

Discover = Callable[..., Iterator[dict[str, Any]]]

KINDS: dict[str, Discover] = {
    "librilight": librilight.discover,
    "librispeech": librispeech.discover,
    "podcasts": podcasts.discover,
    "folder": folder.discover,
    "jsonl": jsonl.discover,
    "lhotse": lhotse_io.discover,
    "hf": hf.discover,
}


def discover(kind: str, root: str, **opts: Any) -> Iterator[dict[str, Any]]:
    """The inputs of the corpus at ``root`` laid out as ``kind``; ``opts`` go to the recipe (e.g. ``source``)."""
    try:
        fn = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown corpus kind {kind!r}; known kinds: {', '.join(sorted(KINDS))} "
                         f"(or `kind: manifest` with a `path` to read a previous run)") from None
    return fn(root, **opts)


def describe_kinds() -> str:
    """One line per kind (the first line of its docstring), for CLI help."""
    return "\n".join(f"{k}: {(fn.__doc__ or '').strip().splitlines()[0]}" for k, fn in KINDS.items())
