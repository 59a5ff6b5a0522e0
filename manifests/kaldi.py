"""Kaldi / ESPnet data directories: ``wav.scp`` + ``text`` + ``utt2spk`` (+ ``segments``)."""
from __future__ import annotations

import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import TextError, check_root, decode_utf8, make_item, open_lines, path_problem, rejected


class KaldiDataDir(Corpus):
    """A Kaldi/ESPnet data directory: wav.scp, text, utt2spk and optional segments.

    Layout: ``wav.scp`` lines ``<recording id> <audio path>`` (relative paths are taken from the folder
    that holds ``data/``, where Kaldi recipes run; ``base=...`` overrides it), ``text`` lines ``<utterance id> <transcript>``,
    ``utt2spk`` lines ``<utterance id> <speaker>``, and optionally ``segments`` lines
    ``<utterance id> <recording id> <start s> <end s>``. Without ``segments`` utterance and recording ids
    are the same. A ``wav.scp`` entry that is a command (ending in ``|``) is refused, never run: convert
    the audio to files first (e.g. ``wav-copy scp:wav.scp ark,scp:...`` or sox). Utterances without audio,
    with unreadable text or a bad segment line are rejected with the fix; an utterance without text keeps
    ``text`` None. Audio outside the recipe folder (or ``base``) needs ``allow_outside_root: true``.
    """

    name = "kaldi"

    def discover(self, root: str, source: str = "kaldi", base: str | None = None, allow_outside_root: bool = False,
                 **_: Any) -> Iterator[dict]:
        root = check_root(root, "Kaldi data directory")
        scp = os.path.join(root, "wav.scp")
        if not os.path.isfile(scp):
            raise FileNotFoundError(f"{root}: no wav.scp; a Kaldi data directory holds wav.scp, text and utt2spk")
        base = base or _recipe_dir(root)
        wavs = {k: (v, where) for k, v, where in _table(scp)}
        texts = {k: (v, where) for k, v, where in _table(os.path.join(root, "text"))}
        speakers = {k: v for k, v, _ in _table(os.path.join(root, "utt2spk"))}
        seg_path = os.path.join(root, "segments")
        if os.path.isfile(seg_path):
            utts = [(k, v if isinstance(v, TextError) else v.split(), where) for k, v, where in _table(seg_path)]
        else:
            utts = [(k, [k], where) for k, _, where in _table(scp)]
        for utt, fields, where in utts:
            meta = {"utterance": utt, "line": where}
            text, text_where = texts.get(utt, (None, None))
            speaker = speakers.get(utt)
            rec = fields[0] if fields and not isinstance(fields, TextError) else ""
            if rec not in wavs:
                yield rejected(source, None, utt, f"{where}: recording {rec!r} is not in {scp}; add it or remove "
                               f"the line", speaker=speaker, meta=meta, input=where)
                continue
            path, scp_where = wavs[rec]
            if isinstance(path, TextError) or isinstance(fields, TextError):
                yield rejected(source, None, utt, str(path if isinstance(path, TextError) else fields), meta=meta,
                               input=scp_where)
                continue
            if path.rstrip().endswith("|"):
                yield rejected(source, None, utt, f"{scp_where}: {rec} is a command, which we never run; write the "
                               f"audio to files first (wav-copy or sox) and list their paths", meta=meta,
                               input=scp_where)
                continue
            path = path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
            problem = path_problem(path, base, allow_outside_root)
            if problem:
                yield rejected(source, path, utt, f"{scp_where}: {problem}", speaker=speaker, meta=meta)
                continue
            start = duration = None
            if len(fields) > 1:
                try:
                    start, end = float(fields[1]), float(fields[2])
                    if not (0 <= start < end):
                        raise ValueError
                    duration = end - start
                except (ValueError, IndexError):
                    yield rejected(source, path, utt, f"{where}: expected '<utt> <recording> <start> <end>' with "
                                   f"0 <= start < end in seconds; fix the line", speaker=speaker, meta=meta)
                    continue
            if isinstance(text, TextError):
                yield rejected(source, path, utt, str(text), speaker=speaker, meta=meta, start=start,
                               duration=duration)
                continue
            yield make_item(source, path, utt, speaker=speaker, text=text or None, meta=meta, start=start,
                            duration=duration)


def _recipe_dir(root: str) -> str:
    """The folder holding ``data/`` above ``root`` (``egs/x/s5`` for ``egs/x/s5/data/train``), else root's parent."""
    parts = root.split(os.sep)
    if "data" in parts[1:]:
        return os.sep.join(parts[: len(parts) - 1 - parts[::-1].index("data")]) or os.sep
    return os.path.dirname(root)


def _table(path: str) -> Iterator[tuple[str, Any, str]]:
    """``(key, rest of the line, "file:line")`` for each non-empty line; undecodable text becomes a TextError."""
    if not os.path.isfile(path):
        return
    for lineno, raw in open_lines(path):
        key_b, _, rest_b = raw.strip().partition(b" ")
        if not key_b:
            continue
        where = f"{path}:{lineno}"
        try:
            rest: Any = decode_utf8(rest_b, where).strip()
        except TextError as e:
            rest = e
        yield key_b.decode("utf-8", "replace"), rest, where
