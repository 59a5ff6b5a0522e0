"""JSONL manifests: one JSON object per line with ``audio_path`` and optional fields."""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

from .corpus import Corpus
from .discovery import check_root, files_with_suffix, make_item, path_problem, rejected
from .json_lines import json_objects
from .schema import seconds_problem

AUDIO_KEYS = ("audio_path", "audio_filepath")  # ours, NeMo's
KNOWN = {"id", "text", "speaker", "start", "duration", *AUDIO_KEYS}
RESERVED = KNOWN | {"source", "meta", "sample_rate", "num_channels", "input", "spans", "key", "error", "error_stage"}
MAX_ID = 256  # characters: an id is a file-name-like key, not a payload


class Jsonl(Corpus):
    """One JSON object per line with ``audio_path`` (or none: text-only rows) and optional fields.

    Layout: a ``.jsonl``/``.jsonl.gz`` file (or a folder of them), one object per line:
    ``{"audio_path": "a.flac", "text": ..., "speaker": ..., "start": 1.5, "duration": 3.0, "id": ...}``.

    Only ``audio_path`` (or NeMo's ``audio_filepath``) is needed for audio rows; relative paths resolve
    against the JSONL's folder. Lines without audio are text-only rows (e.g. instruction data) with
    ``audio_path`` None. Other fields go to ``meta``, except those named in ``keep`` (e.g.
    ``keep: [messages, task]``), which become columns (a declared string column such as ``messages``
    stores a list/object as JSON; an undeclared one is a string column). Every line becomes one item or
    one error row naming ``file:line`` and the fix, whatever it holds: not a JSON object; start/duration
    that are not finite seconds in [0, 1e6] (strings, NaN, inf, 1e308, negatives); non-string text,
    speaker or id; neither audio nor text nor any other field; and an audio path that is missing, a
    directory, a FIFO or device (checked with ``os.stat``, never opened), or outside the JSONL's folder.

    Paths outside the JSONL's folder (``../../etc/passwd``, absolute paths elsewhere, symlinks that escape
    it) are refused unless the input sets ``allow_outside_root: true`` (on the command line:
    ``input.allow_outside_root=true``): a manifest you did not write must not make the pipeline read
    arbitrary files. ``check_exists=False`` skips the file checks (decode still makes them).
    """

    name = "jsonl"

    def discover(self, root: str, source: str = "jsonl", keep: Iterable[str] = (), check_exists: bool = True,
                 allow_outside_root: bool = False, **_: Any) -> Iterator[dict]:
        root = check_root(root, "JSONL", want_dir=False)
        keep = (keep,) if isinstance(keep, str) else tuple(keep)
        clash = [k for k in keep if k in RESERVED]
        if clash:
            raise ValueError(f"jsonl option keep={list(keep)}: {clash} are already columns or item keys; keep "
                             f"only extra fields (e.g. messages, task)")
        opts = dict(keep=keep, check_exists=bool(check_exists), allow_outside_root=bool(allow_outside_root))
        for path in files_with_suffix(root, (".jsonl", ".jsonl.gz")):
            base = os.path.dirname(path)
            stem = os.path.basename(path).split(".")[0]
            for lineno, where, obj, err in json_objects(path):
                key = f"{stem}-{lineno:06d}"
                if err is not None:
                    yield rejected(source, None, key, err, input=where)
                    continue
                try:
                    yield _item(obj, source, base, key, where, **opts)
                except Exception as e:  # noqa: BLE001 - last resort: a bad line never aborts the run
                    yield rejected(source, None, key, f"{where}: cannot use this line ({type(e).__name__}: "
                                   f"{str(e)[:200]}); fix the line", input=where)


def _item(obj: dict[str, Any], source: str, base: str, key: str, where: str, keep: tuple[str, ...],
          check_exists: bool, allow_outside_root: bool) -> dict[str, Any]:
    rid = obj.get("id")
    meta = {k: v for k, v in obj.items() if k not in KNOWN and k not in keep}
    kw: dict[str, Any] = dict(meta=meta, input=where, **{k: obj.get(k) for k in keep})
    if rid not in (None, ""):
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or len(str(rid)) > MAX_ID:
            return rejected(source, None, key, f"{where}: id must be a string of at most {MAX_ID} characters, "
                            f"got {type(rid).__name__} {str(rid)[:40]!r}; fix the id or drop it", **kw)
        key = str(rid)
        meta["orig_id"] = rid
    kw["speaker"] = obj.get("speaker")
    audio = next((obj[k] for k in AUDIO_KEYS if obj.get(k) not in (None, "")), None)
    if audio is not None and not isinstance(audio, str):
        return rejected(source, None, key, f"{where}: audio_path must be a string, got {type(audio).__name__}; "
                        f"fix the line", **kw)
    path = None if audio is None else os.path.normpath(os.path.join(base, os.path.expanduser(audio)))
    start, duration = obj.get("start"), obj.get("duration")
    for name, v in (("start", start), ("duration", duration)):
        bad = None if v is None else seconds_problem(name, v, positive=name == "duration")
        if bad:
            return rejected(source, path, key, f"{where}: {bad}", **kw)
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return rejected(source, path, key, f"{where}: text must be a string, got {type(text).__name__}; fix the "
                        f"line", **kw)
    if path is not None:
        bad = path_problem(path, base, allow_outside_root, check_exists,
                           " (relative paths resolve against the JSONL's folder)")
        if bad:
            return rejected(source, path, key, f"{where}: {bad}", **kw)
    elif start is not None or duration is not None:
        return rejected(source, None, key, f"{where}: start/duration given without audio_path; add the "
                        f"audio_path or drop start/duration", **kw)
    elif not (text or "").strip() and not any(v is not None for k, v in obj.items() if k not in KNOWN):
        return rejected(source, None, key, f"{where}: no audio_path, no text and no other field: nothing to "
                        f"process; add audio_path or text, or remove the line", **kw)
    if path is not None and start is None and duration is not None:
        start = 0.0
    return make_item(source, path, key, text=text, start=start, duration=duration, **kw)
