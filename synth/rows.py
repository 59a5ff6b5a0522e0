"""Row helpers every synthesis stage shares: the ``meta`` column, the ``messages`` JSON, error locations
and the audio facts of a source recording.

Why one module: the stages each build ``messages`` rows and reject items with a reason naming where the
item came from; doing that the same way everywhere keeps the errors table and the export readable.
"""
from __future__ import annotations

import json
from typing import Any

from ..manifests.audio import AudioError, probe


def load_meta(row: dict[str, Any]) -> dict[str, Any]:
    """The row's ``meta`` as a fresh dict (it arrives as a JSON string or a dict; anything else is empty)."""
    m = row.get("meta")
    if isinstance(m, dict):
        return dict(m)
    try:
        v = json.loads(m) if m else {}
    except (TypeError, ValueError):
        return {}
    return v if isinstance(v, dict) else {}


def messages_json(msgs: list[dict[str, Any]]) -> str:
    return json.dumps(msgs, ensure_ascii=False)


def where(row: dict[str, Any]) -> str:
    """What an error reason names: the input file, else the audio, else the id."""
    return str(row.get("_input") or row.get("audio_path") or row.get("id"))


def fill_audio_info(row: dict[str, Any]) -> str | None:
    """Probe the row's audio header (cheap) to fill duration/sample_rate/num_channels; the error reason or None."""
    if row.get("duration") and row.get("sample_rate"):
        return None
    try:
        info = probe(row["audio_path"])
    except AudioError as e:
        return str(e)
    row.setdefault("start", 0.0)
    if row.get("start") is None:
        row["start"] = 0.0
    if not row.get("duration"):
        row["duration"] = round(max(0.0, info.duration - float(row["start"] or 0.0)), 4)
    row["sample_rate"], row["num_channels"] = info.sample_rate, info.num_channels
    return None
