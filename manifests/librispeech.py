"""LibriSpeech-shaped corpora: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + utterance audio."""
from __future__ import annotations

import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import (
    TextError, check_root, decode_utf8, find_audio, is_audio, make_item, rejected, walk,
)

TRANS_SUFFIX = ".trans.txt"


class LibriSpeech(Corpus):
    """Utterance audio per chapter folder with one ``.trans.txt`` of upper-case transcripts.

    Layout: ``<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one
    ``<speaker>-<chapter>.trans.txt`` per chapter, lines ``<utterance id> <TRANSCRIPT>``.

    Any depth above the speaker folders works (``LibriSpeech/train-clean-100/...``). The transcript is
    kept as-is (upper case, no punctuation) in ``text``; the id key is the utterance id; speaker and
    chapter come from the utterance id. A transcript line whose audio is missing, a non-UTF-8 line or a
    line without text is rejected with the fix; audio that no transcript names is kept with text None.
    """

    name = "librispeech"

    def discover(self, root: str, source: str = "librispeech", **_: Any) -> Iterator[dict]:
        root = check_root(root, "LibriSpeech")
        for d, names in walk(root):
            name_set = set(names)
            named: set[str] = set()
            for n in names:
                if not n.endswith(TRANS_SUFFIX):
                    continue
                trans = os.path.join(d, n)
                try:
                    with open(trans, "rb") as f:
                        data = f.read()
                except OSError as e:
                    yield rejected(source, None, n, f"{trans}: cannot read ({e}); fix its permissions", input=trans)
                    continue
                for lineno, raw in enumerate(data.splitlines(), 1):
                    if not raw.strip():
                        continue
                    where = f"{trans}:{lineno}"
                    uid_b, _, text_b = raw.strip().partition(b" ")
                    uid = uid_b.decode("utf-8", "replace")
                    named.add(uid)
                    audio = find_audio(d, uid, name_set)
                    meta = _meta(uid, trans, lineno)
                    speaker = uid.split("-")[0] if "-" in uid else None
                    if audio is None:
                        yield rejected(source, None, uid,
                                       f"{where}: utterance {uid} has no audio file {uid}.flac in {d}; add the "
                                       f"audio or remove the line from {n}", speaker=speaker, meta=meta, input=where)
                        continue
                    try:
                        text = decode_utf8(text_b, where).strip()
                    except TextError as e:
                        yield rejected(source, audio, uid, str(e), speaker=speaker, meta=meta)
                        continue
                    if not text:
                        yield rejected(source, audio, uid, f"{where}: utterance {uid} has no transcript text; "
                                       f"write it after the id or remove the line", speaker=speaker, meta=meta)
                        continue
                    yield make_item(source, audio, uid, speaker=speaker, text=text, meta=meta)
            for n in names:
                stem = os.path.splitext(n)[0]
                if is_audio(n) and stem not in named:
                    path = os.path.join(d, n)
                    yield make_item(source, path, stem, speaker=stem.split("-")[0] if "-" in stem else None,
                                    meta={**_meta(stem, None, None), "note": "no transcript line names this file"})


def _meta(uid: str, trans: str | None, lineno: int | None) -> dict[str, Any]:
    parts = uid.split("-")
    meta: dict[str, Any] = {"utterance": uid}
    if len(parts) == 3:
        meta["chapter"] = parts[1]
    if trans:
        meta["transcript_file"] = os.path.basename(trans)
    return meta
