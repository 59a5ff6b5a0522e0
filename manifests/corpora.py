"""Corpus kinds by name: ``kind`` -> the registered :class:`~slmfactory.manifests.corpus.Corpus` subclass.

Why through the registry (:data:`~slmfactory.manifests.registry.CORPORA`): the runner, the CLI's help
text and the "did you mean" errors read one list that no contributor edits; each kind lives in its own
module with a docstring describing the layout it expects. Discovery lists files and reads
transcripts/metadata only (no audio decoding) and yields bad inputs already rejected, so nothing is
silently dropped. See :mod:`slmfactory.manifests.discovery` for the item shape.
"""
from __future__ import annotations

from typing import Any, Iterator

from .corpus import Corpus
from .registry import CORPORA


def corpus(kind: str) -> Corpus:
    """The corpus kind ``kind``; an unknown kind raises ``UnknownName`` (a ValueError) with "did you mean"."""
    return CORPORA.load(kind)()


def discover(kind: str, root: str, **opts: Any) -> Iterator[dict[str, Any]]:
    """The inputs of the corpus at ``root`` laid out as ``kind``; ``opts`` go to the kind (e.g. ``source``)."""
    return corpus(kind).discover(root, **opts)


def discover_input(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The items a recipe's ``input:`` names: ``kind``, the root (``root``, or the kind's own ``root_key``)
    and the kind's options, given inline or under ``options``."""
    spec = dict(spec)
    found = corpus(spec.pop("kind"))
    root = spec.pop(found.root_key, None)
    plain = spec.pop("root", None)  # a kind with a key of its own (``manifest``: ``path``) also takes ``root``
    root = plain if root is None else root
    if root is None:
        raise ValueError(f"input of kind {found.name!r} needs a {found.root_key!r} (the corpus folder or file)")
    opts = dict(spec.pop("options", {}) or {})
    opts.update(spec)
    yield from found.discover(root, **opts)


def describe_kinds() -> str:
    """One line per kind (the first line of its docstring), for CLI help."""
    return CORPORA.help()
