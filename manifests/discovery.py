"""Shared pieces of the corpus recipes: a lazy sorted walk (local or ``s3://`` via ``storage.py``), the item
builder, careful text reading. Why a module: every corpus kind yields the same item shape and must walk trees
of any size the same way.

The item contract (consumed by the runner): ``id``, ``audio_path`` (absolute or None), ``start``,
``duration`` (None unless the item is already a segment), ``speaker``, ``text``, ``source``, ``meta``
(JSON string), ``_spans`` (known voice activity or None) and ``_input`` (the path as the user knows it).
Bad inputs are yielded too, already rejected with a reason that names the file and the fix.

Nothing a row holds may abort a run: :func:`make_item` itself refuses values that could not be written
(non-finite or out-of-range seconds, non-string text, unhashable speakers, invalid UTF-8) by returning the
item rejected; :func:`path_problem` checks an audio path with ``os.stat`` only (a FIFO would block).
"""
from __future__ import annotations

import functools
import logging
import math
import os
import stat
from typing import Any, Iterator, Mapping

import numpy as np

from . import storage
from .schema import column_value, dumps_meta, reject, seconds_problem, segment_id, utf8_safe
from .audio import AUDIO_EXTS, file_kind

DISCOVER = "discover"  # the stage name in the errors table
log = logging.getLogger("slmfactory.manifests.discovery")


def walk(root: str) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(directory, sorted file names)`` depth-first, in sorted order, one directory at a time.

    Why not plain ``os.walk``: its order is the file system's (not reproducible across machines) and it
    has no symlink-loop guard. Here only the current directory's names are held (plus the stack of
    pending folder paths), so a 60k-hour LibriLight tree never sits in memory, and the order is the
    same on every machine. A folder that cannot be listed is logged as a warning (no row to attach it
    to). Hidden entries (``.name``, e.g. macOS ``._x.wav`` forks) are skipped;
    symlinked folders are followed once (a link back up the tree does not loop). A folder named like an
    audio file (``x.wav/``) is walked and also listed among the files, so the corpus kind reports it.
    Names are never opened here: FIFOs, devices and sockets are listed as files for the kind to reject.
    """
    if storage.is_remote(root):  # s3://bucket/prefix: listed through pyarrow.fs (manifests/storage.py)
        yield from storage.walk(root)
        return
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
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(e.name)
                    if is_dir and is_audio(e.name):
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
    if storage.is_remote(root):
        return storage.check_root(str(root), what, want_dir)
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
    """One discovered input in the runner's item shape (see the module docstring).

    Never raises for what the input holds: a value that cannot be written (see the module docstring)
    makes the item come back rejected, with the first problem and ``input`` (file:line) as its reason.
    """
    problems: list[str] = []
    if audio_path is not None and not isinstance(audio_path, str):
        problems.append(f"audio_path must be a string, got {type(audio_path).__name__}; fix the path")
        audio_path = None
    for name, v in (("start", start), ("duration", duration)):
        bad = None if v is None else seconds_problem(name, v, positive=name == "duration")
        if bad:
            problems.append(bad)
            start = duration = None
    if text is not None and not isinstance(text, str):
        problems.append(f"text must be a string, got {type(text).__name__}; write the transcript as a string")
        text = None
    if speaker is not None and (isinstance(speaker, bool) or not isinstance(speaker, (str, int, float))):
        problems.append(f"speaker must be a string, got {type(speaker).__name__}; fix the speaker field")
        speaker = None
    key = None if key is None else str(key)
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
    for name, value in extra.items():
        item[name], bad = column_value(name, value)
        if bad:
            problems.append(bad)
    for name, value in item.items():
        if isinstance(value, str):
            item[name], ok = utf8_safe(value)
            if not ok:
                problems.append(f"{name} {item[name][:80]!r} is not valid UTF-8 (a file name in another "
                                f"encoding, or a lone surrogate); rename the file or fix the text")
    if problems:
        reject(item, DISCOVER, f"{item['_input'] or key}: {problems[0]}")
    return item


def rejected(source: str, audio_path: str | None, key: str, reason: str, **kw: Any) -> dict[str, Any]:
    """An input found bad at discovery: yielded (never dropped) with its reason for OUT/errors."""
    item = make_item(source, audio_path if isinstance(audio_path, str) else None, key, **kw)
    return reject(item, DISCOVER, utf8_safe(reason)[0])


def path_problem(path: str, root: str | None, allow_outside_root: bool = False, check_exists: bool = True,
                 missing_hint: str = "") -> str | None:
    """Why ``path`` cannot be an audio file of the corpus at ``root``, or None. Uses ``os.stat`` only.

    Refused: a NUL byte; a path whose real location (symlinks resolved) is outside ``root`` unless
    ``allow_outside_root``; then, when ``check_exists``, a missing file, a directory, and anything that is
    not a regular file (FIFO, device, socket: opening one could block or read forever).
    """
    if "\x00" in path:
        return f"audio path {path!r} contains a NUL byte; fix the path"
    if storage.is_remote(path):  # listed by storage.walk; a missing object becomes an error row at decode
        return None
    if root is not None and not allow_outside_root:
        real, real_root = _realpath(path), _real_dir(os.path.abspath(root))
        if os.path.commonpath([real, real_root]) != real_root:
            via = "" if real == os.path.abspath(path) else f" (it resolves to {real})"
            return (f"audio file {path} is outside the corpus root {root}{via}; put the audio under the root, or "
                    f"allow it with the input option allow_outside_root: true (`input.allow_outside_root=true` on "
                    f"the command line; only for inputs you trust)")
    if not check_exists:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"audio file {path} not found{missing_hint}; fix the path or add the file"
    except (OSError, ValueError) as e:  # ValueError: a name the file system cannot encode
        return f"audio file {path} cannot be read ({e}); fix its permissions or the path"
    if stat.S_ISREG(st.st_mode):
        return None
    what = file_kind(st.st_mode)
    return f"{path} is a {what}, not an audio file; point the input at a regular audio file" + (
        "" if what == "directory" else " (SLM Factory never opens FIFOs, devices or sockets)")


@functools.lru_cache(maxsize=4096)
def _real_dir(d: str) -> str:
    return os.path.realpath(d)


def _realpath(path: str) -> str:
    """``os.path.realpath`` with the folder part cached: one ``lstat`` per file instead of one per component."""
    d, name = os.path.split(os.path.abspath(path))
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    full = os.path.join(_real_dir(d), name)
    return os.path.realpath(full) if os.path.islink(full) else full


class TextError(ValueError):
    """A transcript or metadata file that cannot be read as UTF-8 text; the message names the fix."""


def read_utf8(path: str) -> str:
    """A text file's content, or :class:`TextError` naming the first bad byte and the ``iconv`` fix.

    Only regular files are opened (checked with ``os.stat`` first: a FIFO named ``x.txt`` would block)."""
    if storage.is_remote(path):
        return decode_utf8(storage.read_bytes(path), path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise TextError(f"{path}: is a {file_kind(mode)}, not a text file; replace it with the transcript file")
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

    Raw bytes so that one non-UTF-8 line rejects only itself, not the whole file. Only a regular file is
    opened: anything else raises ``OSError`` before any ``open``.
    """
    import gzip

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise OSError(f"{path}: is a {file_kind(mode)}, not a regular file")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for i, line in enumerate(f, 1):
            yield i, line


def read_lines(path: str) -> Iterator[tuple[int, bytes | None, str | None]]:
    """:func:`open_lines` that never raises: a file that cannot be read (or a gzip stream broken midway)
    ends with one ``(line, None, reason)`` naming where reading stopped and the fix."""
    import zlib

    lineno = 0
    try:
        for lineno, raw in open_lines(path):
            yield lineno, raw, None
    except (OSError, EOFError, zlib.error, ValueError) as e:
        yield lineno + 1, None, (f"{path}:{lineno + 1}: cannot read the file from here on ({e}); re-create or "
                                 f"re-download it (`gzip -t` tests a .gz file)")


def files_with_suffix(root: str, suffixes: tuple[str, ...]) -> list[str]:
    """``root`` itself when it is a file, else the sorted files under it whose names end with a suffix."""
    if os.path.isfile(root):
        return [root]
    return [os.path.join(d, n) for d, names in walk(root) for n in names if n.lower().endswith(suffixes)]
