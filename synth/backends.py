"""Build a backend by its registered name, failing with the family's own error type.

Why: recipes name LLM and TTS backends; an unknown name must say "did you mean" and list the known
names (the registry's message), yet callers and tests catch ``LlmError`` / ``TtsError``, so the
registry's ``UnknownName`` is re-raised as the family's error with the same message.
"""
from __future__ import annotations

from typing import Any

from ..manifests.registry import Family, UnknownName


def build(family: Family, name: str, error: type[Exception], params: dict[str, Any]) -> Any:
    """``family.load(name)(**params)``; an unknown ``name`` raises ``error`` with the registry's message."""
    try:
        cls = family.load(name)
    except UnknownName as e:
        raise error(str(e)) from e
    return cls(**params)
