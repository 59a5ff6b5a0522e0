"""JSON Lines read the one way every corpus kind needs: a bad line is a reason, never an exception.

Why its own module: the ``jsonl`` and ``lhotse`` kinds both read one JSON object per line (gzip or not) and
must turn unreadable files, invalid JSON (including nesting deep enough to raise RecursionError) and
non-object lines into error rows that name ``file:line`` and the fix.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from .discovery import read_lines


def json_objects(path: str) -> Iterator[tuple[int, str, dict[str, Any] | None, str | None]]:
    """``(line number, "file:line", object or None, reason or None)`` for each non-blank line of ``path``."""
    for lineno, raw, err in read_lines(path):
        where = f"{path}:{lineno}"
        if err is not None:
            yield lineno, where, None, err
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except Exception as e:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError (deep nesting)
            yield lineno, where, None, (f"{where}: not valid JSON ({str(e)[:200]}); fix the line (one JSON object "
                                        f"per line) or remove it")
            continue
        if not isinstance(obj, dict) or not obj:
            got = "an empty object" if isinstance(obj, dict) else type(obj).__name__
            yield lineno, where, None, f"{where}: expected a non-empty JSON object, got {got}; write one object per line"
            continue
        yield lineno, where, obj, None
