"""Any tree of audio files with optional same-stem ``.txt`` transcripts (the catch-all corpus)."""
from __future__ import annotations

import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import TextError, check_root, is_audio, make_item, path_problem, read_utf8, rejected, walk


class Folder(Corpus):
    """Any tree of audio files, each with an optional same-stem ``.txt`` transcript.

    Layout: any tree of audio files (wav/flac/ogg/mp3/m4a/opus...), each optionally with a same-stem
    ``.txt`` transcript beside it (``a/b/utt1.wav`` + ``a/b/utt1.txt``).

    Audio without a transcript is a good item with ``text`` None. A transcript without audio, a
    transcript that is not UTF-8 or is empty is rejected with the fix. ``speaker_from_dir=True`` takes
    the parent folder's name as the speaker. Other files are ignored.

    An audio name that is not a regular file (a FIFO, a device, a folder named ``x.wav``: checked with
    ``os.stat``, never opened) is rejected, and so is a file or symlink whose real location is outside
    the root, unless the input sets ``allow_outside_root: true`` (``input.allow_outside_root=true`` on
    the command line) for trees that link to audio kept elsewhere.
    """

    name = "folder"

    def discover(self, root: str, source: str = "folder", speaker_from_dir: bool = False,
                 allow_outside_root: bool = False, **_: Any) -> Iterator[dict]:
        root = check_root(root, "folder")
        real_root = os.path.realpath(root)
        for d, names in walk(root):
            stems_with_audio = {os.path.splitext(n)[0] for n in names if is_audio(n)}
            txts = {os.path.splitext(n)[0]: n for n in names if n.lower().endswith(".txt")}
            speaker = os.path.basename(d) if speaker_from_dir and d != root else None
            # one realpath per folder; per file only for symlinks (a 200k-file tree stays cheap)
            d_inside = allow_outside_root or os.path.commonpath([os.path.realpath(d), real_root]) == real_root
            for n in names:
                path = os.path.join(d, n)
                stem = os.path.splitext(n)[0]
                rel = os.path.relpath(path, root)
                key = os.path.splitext(rel)[0].replace(os.sep, "-")  # unique in the tree, independent of where it lives
                check_root_of = root if not d_inside or os.path.islink(path) else None
                if is_audio(n):
                    meta = {"relpath": rel}
                    bad = path_problem(path, check_root_of, allow_outside_root)
                    if bad:
                        yield rejected(source, path, key, bad, speaker=speaker, meta=meta)
                        continue
                    text = None
                    if stem in txts:
                        txt = os.path.join(d, txts[stem])
                        bad = path_problem(txt, root if not d_inside or os.path.islink(txt) else None,
                                           allow_outside_root, check_exists=False)
                        try:
                            if bad:  # read_utf8 itself refuses FIFOs and devices
                                raise TextError(bad.replace("audio file", "transcript", 1))
                            text = read_utf8(txt).strip()
                        except TextError as e:
                            yield rejected(source, path, key, str(e), speaker=speaker, meta=meta)
                            continue
                        except OSError as e:
                            yield rejected(source, path, key, f"{txt}: cannot read the transcript ({e}); fix its "
                                           f"permissions or remove it", speaker=speaker, meta=meta)
                            continue
                        if not text:
                            yield rejected(source, path, key, f"{txt}: transcript is empty; write the transcript "
                                           f"or delete the .txt to keep the audio without text",
                                           speaker=speaker, meta=meta)
                            continue
                    yield make_item(source, path, key, speaker=speaker, text=text, meta=meta)
                elif n.lower().endswith(".txt") and stem not in stems_with_audio:
                    yield rejected(source, None, key,
                                   f"{path}: transcript has no audio file {stem}.wav/.flac (or another audio "
                                   f"extension) beside it; add the audio or remove the transcript",
                                   meta={"relpath": rel}, input=path)
