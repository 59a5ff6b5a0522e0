"""The base class of the corpus kinds (the CORPORA registry family, :mod:`slmfactory.manifests.registry`).

Why a class per kind: the runner (``input: {kind: librispeech, root: ...}``), the CLI's help and the
"did you mean" errors all find a kind by its ``name`` through the registry, which reads the source and
imports only the kind in use. Adding a corpus is one module (a ``Corpus`` subclass) plus one test.
"""
from __future__ import annotations

from typing import Any, Iterator


class Corpus:
    """A corpus layout on disk, listed lazily as input items (see :mod:`slmfactory.manifests.discovery`).

    A subclass sets ``name = "<kind>"`` and implements :meth:`discover`. Its docstring is its user
    documentation: the first line is the CLI help line, the rest describes the layout it expects.
    """

    name: str
    root_key: str = "root"  # the recipe's ``input`` key that holds the corpus root

    def discover(self, root: str, **opts: Any) -> Iterator[dict[str, Any]]:
        """The items of the corpus at ``root``; bad inputs are yielded already rejected, never dropped."""
        raise NotImplementedError
