"""Benchmark pairs (``slmfactory slm pairs``): each pair becomes two rows, its positive and its negative member."""
from __future__ import annotations

import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import check_root, files_with_suffix, make_item, path_problem, rejected
from .json_lines import json_objects

ROLES = ("positive", "negative")


class SpokenPairs(Corpus):
    """Benchmark pairs (a pairs JSONL): two rows per pair, to speak with one voice or to tokenize as given.

    Layout: a ``.jsonl`` file (or a folder of them) written by ``slmfactory slm pairs``, one pair per line:
    ``{"pair_id", "kind", "paradigm", "positive_text", "negative_text", "voice"}`` for pairs to synthesize,
    or ``positive_audio``/``negative_audio`` (published sWUGGY/sBLIMP/StoryCloze files) instead of texts.
    Each member becomes a row with ``pair_id``, ``kind``, ``paradigm``, ``role`` (positive | negative) and
    ``text`` (what the TTS reads) or ``audio_path``; ``speaker`` is the pair's voice, so both members of a
    pair carry the same one. Audio paths resolve against ``audio_root`` (default: the JSONL's folder) and
    must lie under it unless ``allow_outside_root: true``. A line without an id, a kind or either member is
    rejected with the fix (one error row per member, so no pair is silently half-missing).
    """

    name = "spoken_pairs"

    def discover(self, root: str, source: str = "pairs", audio_root: str | None = None,
                 allow_outside_root: bool = False, check_exists: bool = True, **_: Any) -> Iterator[dict]:
        root = check_root(root, "pairs JSONL", want_dir=False)
        for path in files_with_suffix(root, (".jsonl", ".jsonl.gz")):
            base = os.path.abspath(audio_root) if audio_root else os.path.dirname(path)
            for lineno, where, obj, err in json_objects(path):
                if err is not None:
                    for role in ROLES:
                        yield rejected(source, None, f"line{lineno:06d}-{role}", err, input=where)
                    continue
                yield from _members(obj, source, base, where, lineno, bool(allow_outside_root), bool(check_exists))


def _members(obj: dict[str, Any], source: str, base: str, where: str, lineno: int, outside: bool,
             check: bool) -> Iterator[dict]:
    pid = obj.get("pair_id")
    pid = str(pid) if isinstance(pid, (str, int)) and not isinstance(pid, bool) and str(pid) else f"line{lineno:06d}"
    voice = obj.get("voice") if isinstance(obj.get("voice"), str) else None
    cols = {"pair_id": pid, "kind": obj.get("kind"), "paradigm": obj.get("paradigm")}
    for role in ROLES:
        key, text, audio = f"{pid}-{role}", obj.get(f"{role}_text"), obj.get(f"{role}_audio")
        kw = dict(input=where, speaker=voice, role=role, **cols)
        if not isinstance(cols["kind"], str) or "pair_id" not in obj:
            yield rejected(source, None, key, f"{where}: a pair needs a pair_id and a kind (lexical, syntactic, "
                           f"story); write them with `slmfactory slm pairs`", **kw)
            continue
        if audio not in (None, ""):
            if not isinstance(audio, str):
                yield rejected(source, None, key, f"{where}: {role}_audio must be a path string", **kw)
                continue
            path = os.path.normpath(os.path.join(base, os.path.expanduser(audio)))
            bad = path_problem(path, base, outside, check, " (relative paths resolve against audio_root)")
            if bad:
                yield rejected(source, path, key, f"{where}: {bad}", **kw)
                continue
            yield make_item(source, path, key, text=text if isinstance(text, str) else None, **kw)
        elif isinstance(text, str) and text.strip():
            yield make_item(source, None, key, text=text, **kw)
        else:
            yield rejected(source, None, key, f"{where}: no {role}_text and no {role}_audio; give one of them",
                           **kw)
