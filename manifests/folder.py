"""Any tree of audio files with optional same-stem ``.txt`` transcripts (the catch-all corpus)."""
from __future__ import annotations

import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import TextError, check_root, is_audio, make_item, read_utf8, rejected, walk


class Folder(Corpus):
    """Any tree of audio files, each with an optional same-stem ``.txt`` transcript.

    Layout: any tree of audio files (wav/flac/ogg/mp3/m4a/opus...), each optionally with a same-stem
    ``.txt`` transcript beside it (``a/b/utt1.wav`` + ``a/b/utt1.txt``).

    Audio without a transcript is a good item with ``text`` None. A transcript without audio, a
    transcript that is not UTF-8 or is empty is rejected with the fix. ``speaker_from_dir=True`` takes
    the parent folder's name as the speaker. Other files are ignored.
    """

    name = "folder"

    def discover(self, root: str, source: str = "folder", speaker_from_dir: bool = False, **_: Any) -> Iterator[dict]:
        root = check_root(root, "folder")
        for d, names in walk(root):
            stems_with_audio = {os.path.splitext(n)[0] for n in names if is_audio(n)}
            txts = {os.path.splitext(n)[0]: n for n in names if n.lower().endswith(".txt")}
            speaker = os.path.basename(d) if speaker_from_dir and d != root else None
            for n in names:
                path = os.path.join(d, n)
                stem = os.path.splitext(n)[0]
                rel = os.path.relpath(path, root)
                key = os.path.splitext(rel)[0].replace(os.sep, "-")  # unique in the tree, independent of where it lives
                if is_audio(n):
                    meta = {"relpath": rel}
                    text = None
                    if stem in txts:
                        txt = os.path.join(d, txts[stem])
                        try:
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
