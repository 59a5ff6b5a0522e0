"""JSONL manifests: one JSON object per line with ``audio_path`` and optional fields."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable, Iterator

from .corpus import Corpus
from .discovery import check_root, files_with_suffix, make_item, open_lines, rejected

AUDIO_KEYS = ("audio_path", "audio_filepath")  # ours, NeMo's
KNOWN = {"id", "text", "speaker", "start", "duration", *AUDIO_KEYS}
RESERVED = KNOWN | {"source", "meta", "sample_rate", "num_channels", "input", "spans", "key", "error", "error_stage"}


class Jsonl(Corpus):
    """One JSON object per line with ``audio_path`` (or none: text-only rows) and optional fields.

    Layout: a ``.jsonl``/``.jsonl.gz`` file (or a folder of them), one object per line:
    ``{"audio_path": "a.flac", "text": ..., "speaker": ..., "start": 1.5, "duration": 3.0, "id": ...}``.

    Only ``audio_path`` (or NeMo's ``audio_filepath``) is needed for audio rows; relative paths resolve
    against the JSONL's folder. Lines without audio are text-only rows (e.g. instruction data) with
    ``audio_path`` None. Other fields go to ``meta``, except those named in ``keep`` (e.g.
    ``keep: [messages, task]``), which become columns. A line that is not a JSON object, has a
    non-numeric or negative start/duration, non-string text, or names a missing audio file
    (``check_exists``) is rejected with its file and line number.
    """

    name = "jsonl"

    def discover(self, root: str, source: str = "jsonl", keep: Iterable[str] = (), check_exists: bool = True,
                 **_: Any) -> Iterator[dict]:
        root = check_root(root, "JSONL", want_dir=False)
        keep = (keep,) if isinstance(keep, str) else tuple(keep)
        clash = [k for k in keep if k in RESERVED]
        if clash:
            raise ValueError(f"jsonl option keep={list(keep)}: {clash} are already columns or item keys; keep "
                             f"only extra fields (e.g. messages, task)")
        for path in files_with_suffix(root, (".jsonl", ".jsonl.gz")):
            base = os.path.dirname(path)
            stem = os.path.basename(path).split(".")[0]
            for lineno, raw in open_lines(path):
                if not raw.strip():
                    continue
                where = f"{path}:{lineno}"
                key = f"{stem}-{lineno:06d}"
                try:
                    obj = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as e:
                    yield rejected(source, None, key, f"{where}: not valid JSON ({e}); fix the line (one JSON "
                                   f"object per line) or remove it", input=where)
                    continue
                if not isinstance(obj, dict) or not obj:
                    yield rejected(source, None, key, f"{where}: expected a non-empty JSON object, got "
                                   f"{type(obj).__name__}; write one object per line", input=where)
                    continue
                yield _item(obj, source, base, key, where, keep, check_exists)


def _item(obj: dict[str, Any], source: str, base: str, key: str, where: str, keep: tuple[str, ...],
          check_exists: bool) -> dict[str, Any]:
    if obj.get("id") not in (None, ""):
        key = str(obj["id"])
    audio = next((obj[k] for k in AUDIO_KEYS if obj.get(k) not in (None, "")), None)
    meta = {k: v for k, v in obj.items() if k not in KNOWN and k not in keep}
    extra = {k: obj.get(k) for k in keep}
    if obj.get("id") not in (None, ""):
        meta["orig_id"] = obj["id"]
    kw = dict(speaker=obj.get("speaker"), meta=meta, input=where, **extra)
    if audio is not None and not isinstance(audio, str):
        return rejected(source, None, key, f"{where}: audio_path must be a string, got {type(audio).__name__}", **kw)
    path = None if audio is None else os.path.normpath(os.path.join(base, os.path.expanduser(audio)))
    start, duration = obj.get("start"), obj.get("duration")
    for name, v in (("start", start), ("duration", duration)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                              or (name == "duration" and v == 0)):
            return rejected(source, path, key, f"{where}: {name} must be a number of seconds "
                            f"({'> 0' if name == 'duration' else '>= 0'}), got {v!r}; fix the line", **kw)
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return rejected(source, path, key, f"{where}: text must be a string, got {type(text).__name__}; fix the "
                        f"line", **kw)
    if path is not None and check_exists and not os.path.isfile(path):
        return rejected(source, path, key, f"{where}: audio file {path} not found (relative paths resolve "
                        f"against the JSONL's folder); fix audio_path or add the file", **kw)
    if path is None and (start is not None or duration is not None):
        return rejected(source, None, key, f"{where}: start/duration given without audio_path; add the "
                        f"audio_path or drop start/duration", **kw)
    if path is not None and start is None and duration is not None:
        start = 0.0
    return make_item(source, path, key, text=text, start=start, duration=duration, **kw)
