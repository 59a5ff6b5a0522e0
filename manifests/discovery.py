"""Shared pieces of the corpus recipes: a lazy sorted walk, the item builder, careful text reading.

Why a module of its own: every corpus kind (``librispeech.py``, ``folder.py`` ...: one
:class:`~slmfactory.manifests.corpus.Corpus` subclass each) yields the same item shape and must walk trees
of any size the same way.

The item contract (consumed by the runner): ``id``, ``audio_path`` (absolute or None), ``start``,
``duration`` (None unless the item is already a segment), ``speaker``, ``text``, ``source``, ``meta``
(JSON string), ``_spans`` (known voice activity or None) and ``_input`` (the path as the user knows it).
Bad inputs are yielded too, already rejected with a reason that names the file and the fix.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterator, Mapping

import numpy as np

from .schema import reject, dumps_meta, segment_id
from .audio import AUDIO_EXTS

DISCOVER = "discover"  # the stage name in the errors table
log = logging.getLogger("slmfactory.manifests.discovery")


def walk(root: str) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(directory, sorted file names)`` depth-first, in sorted order, one directory at a time.

    Why not plain ``os.walk``: its order is the file system's (not reproducible across machines) and it
    has no symlink-loop guard. Here only the current directory's names are held (plus the stack of
    pending folder paths), so a 60k-hour LibriLight tree never sits in memory, and the order is the
    same on every machine. A folder that cannot be listed is logged as a warning (no row to attach it
    to). Hidden entries (``.name``, e.g. macOS ``._x.wav`` forks) are skipped;
    symlinked folders are followed once (a link back up the tree does not loop).
    """
    stack = [os.path.abspath(root)]
    seen: set[tuple[int, int]] = set()  # (device, inode) of folders walked: symlink loops end here
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        files, dirs = [], []
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        (dirs if e.is_dir() else files).append(e.name)
                    except OSError:
                        files.append(e.name)
        except OSError as e:
            log.warning("%s: cannot list this folder (%s); its files are not discovered. Fix its permissions", d, e)
            continue
        files.sort()
        yield d, files
        stack.extend(os.path.join(d, n) for n in sorted(dirs, reverse=True))


def is_audio(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTS


def check_root(root: str | os.PathLike, what: str, want_dir: bool = True) -> str:
    """The root as an absolute path, or a ``FileNotFoundError`` that says what was expected there."""
    path = os.path.abspath(os.fspath(root))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{root}: no such {'folder' if want_dir else 'file'}; give the {what} root "
                                f"(check the recipe's input.root)")
    if want_dir and not os.path.isdir(path):
        raise NotADirectoryError(f"{root}: is a file; the {what} recipe expects a folder")
    return path


def make_item(source: str, audio_path: str | None, key: str, *, speaker: str | None = None,
              text: str | None = None, meta: Mapping[str, Any] | None = None, input: str | None = None,
              start: float | None = None, duration: float | None = None,
              spans: list[list[float]] | None = None, **extra: Any) -> dict[str, Any]:
    """One discovered input in the runner's item shape (see the module docstring)."""
    item = {
        "id": segment_id(source, audio_path, start or 0.0, duration, key=key),
        "audio_path": audio_path,
        "start": None if start is None else float(start),
        "duration": None if duration is None else float(duration),
        "speaker": None if speaker is None else str(speaker),
        "text": text,
        "source": source,
        "meta": dumps_meta(meta),
        "_spans": spans,
        "_input": input if input is not None else audio_path,
    }
    item.update(extra)
    return item


def rejected(source: str, audio_path: str | None, key: str, reason: str, **kw: Any) -> dict[str, Any]:
    """An input found bad at discovery: yielded (never dropped) with its reason for OUT/errors."""
    return reject(make_item(source, audio_path, key, **kw), DISCOVER, reason)


class TextError(ValueError):
    """A transcript or metadata file that cannot be read as UTF-8 text; the message names the fix."""


def read_utf8(path: str) -> str:
    """A text file's content, or :class:`TextError` naming the first bad byte and the ``iconv`` fix."""
    with open(path, "rb") as f:
        return decode_utf8(f.read(), path)


def decode_utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextError(f"{where}: transcript is not UTF-8 (byte 0x{data[e.start]:02x} at {e.start}); convert "
                        f"it with `iconv -f latin1 -t utf-8` (or the file's real encoding)") from e


def find_audio(directory: str, stem: str, names: set[str] | None = None) -> str | None:
    """The first ``stem.<audio ext>`` in ``directory`` (sorted by extension), or None."""
    for ext in sorted(AUDIO_EXTS):
        name = stem + ext
        if (name in names) if names is not None else os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def valid_spans(value: Any, where: str) -> list[list[float]]:
    """Voice-activity spans as ``[[start, end], ...]`` sorted; ValueError naming the file otherwise.

    Checked with numpy (a LibriLight file has hundreds of spans, the corpus 200k+ files); the slow
    per-span loop only runs to name the first bad span.
    """
    if not isinstance(value, list):
        raise ValueError(f"{where}: voice_activity must be a list of [start, end] pairs in seconds, "
                         f"got {type(value).__name__}; fix the JSON or delete the key to segment by VAD")
    if not value:
        return []
    try:
        arr = np.asarray(value, dtype=np.float64)
        ok = arr.ndim == 2 and arr.shape[1] == 2 and bool(np.isfinite(arr).all()) and bool(
            ((arr[:, 0] >= 0) & (arr[:, 0] < arr[:, 1])).all())
    except (TypeError, ValueError):
        ok = False
    if ok:  # (JSON true/false would pass as 1/0 here: harmless, and not worth a Python loop per span)
        return arr[np.lexsort((arr[:, 1], arr[:, 0]))].tolist()
    for i, s in enumerate(value):
        good = isinstance(s, (list, tuple)) and len(s) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in s)
        if not good or not (0 <= s[0] < s[1]):
            raise ValueError(f"{where}: voice_activity[{i}] = {s!r} is not a [start, end] pair with "
                             f"0 <= start < end; fix the JSON or delete the key to segment by VAD")
    raise ValueError(f"{where}: voice_activity is malformed; fix the JSON or delete the key")  # pragma: no cover


def open_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of a text file, gzip-compressed when its name ends with ``.gz``.

    Raw bytes so that one non-UTF-8 line rejects only itself, not the whole file.
    """
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for i, line in enumerate(f, 1):
            yield i, line


def files_with_suffix(root: str, suffixes: tuple[str, ...]) -> list[str]:
    """``root`` itself when it is a file, else the sorted files under it whose names end with a suffix."""
    if os.path.isfile(root):
        return [root]
    return [os.path.join(d, n) for d, names in walk(root) for n in names if n.lower().endswith(suffixes)]
