"""LibriLight-shaped corpora: ``<speaker>/<book>/<file>.flac`` with the per-file ``.json`` metadata."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import (
    TextError, check_root, is_audio, make_item, read_utf8, rejected, valid_spans, walk,
)


class LibriLight(Corpus):
    """Long ``.flac`` files per speaker/book with ``.json`` metadata and voice-activity spans.

    Layout: ``<speaker>/<book>/<file>.flac`` and beside each file a ``<file>.json`` with
    ``speaker``, ``book_meta`` (id, title, authors, genre...), ``snr`` and ``voice_activity``
    (``[[start, end], ...]`` seconds).

    The ``voice_activity`` spans become ``_spans`` so the segment stage cuts there instead of running
    VAD (``use_spans=False`` ignores them). Files without a ``.json`` are kept (speaker from the folder,
    VAD segments them). A ``.json`` that is not valid UTF-8 JSON or has malformed spans rejects its file
    with the fix. Audio is not decoded here.
    """

    name = "librilight"

    def discover(self, root: str, source: str = "librilight", use_spans: bool = True, **_: Any) -> Iterator[dict]:
        root = check_root(root, "LibriLight")
        for d, names in walk(root):
            name_set = set(names)
            rel = os.path.relpath(d, root).split(os.sep)
            for n in names:
                if not is_audio(n):
                    continue
                path = os.path.join(d, n)
                stem = os.path.splitext(n)[0]
                key = "-".join([*rel[-2:], stem]) if rel != ["."] else stem
                speaker = rel[-2] if len(rel) >= 2 else None
                meta: dict[str, Any] = {"book": rel[-1] if rel != ["."] else None, "file": stem}
                spans = None
                if stem + ".json" in name_set:
                    jpath = os.path.join(d, stem + ".json")
                    try:
                        info = json.loads(read_utf8(jpath))
                        if not isinstance(info, dict):
                            raise ValueError(f"{jpath}: expected a JSON object, got {type(info).__name__}; fix it "
                                             f"or delete it (VAD then segments the file)")
                        if use_spans and info.get("voice_activity") is not None:
                            spans = valid_spans(info["voice_activity"], jpath)
                    except (TextError, ValueError, OSError) as e:
                        reason = str(e) if str(e).startswith(jpath) else (
                            f"{jpath}: not valid JSON ({e}); fix it or delete it (VAD then segments the file)")
                        yield rejected(source, path, key, reason, speaker=speaker, meta=meta)
                        continue
                    speaker = str(info.get("speaker") or speaker or "") or None
                    meta.update(_book_meta(info))
                yield make_item(source, path, key, speaker=speaker, meta=meta, spans=spans)


def _book_meta(info: dict[str, Any]) -> dict[str, Any]:
    """The useful, small part of LibriLight's metadata (the full ``book_meta`` has long descriptions)."""
    out: dict[str, Any] = {}
    if isinstance(info.get("snr"), (int, float)):
        out["snr"] = info["snr"]
    bm = info.get("book_meta")
    if isinstance(bm, dict):
        for k in ("id", "title", "language", "genre", "totaltime", "url_librivox"):
            if bm.get(k) not in (None, "", []):
                out[f"book_{k}"] = bm[k]
        authors = bm.get("authors")
        if isinstance(authors, list):
            names = []
            for a in authors:
                if isinstance(a, dict):
                    names.append(" ".join(str(a[k]) for k in ("first_name", "last_name", "name") if a.get(k)))
                elif isinstance(a, str):
                    names.append(a)
            out["book_authors"] = [x for x in names if x]
    return out
