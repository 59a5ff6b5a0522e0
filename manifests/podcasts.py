"""Podcast folders: long episodes, optional per-episode JSON or an RSS feed; VAD segments them later."""
from __future__ import annotations

import json
import logging
import os
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import TextError, check_root, is_audio, make_item, read_utf8, rejected, walk

RSS_EXTS = (".xml", ".rss")
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
log = logging.getLogger("slmfactory.manifests.podcasts")


class Podcasts(Corpus):
    """Long episodes (any audio format) with optional episode JSON and RSS feeds; VAD cuts them.

    Layout: a folder (any depth) of long episodes (mp3/ogg/m4a/flac/wav...), each optionally with
    ``<episode>.json`` metadata beside it, and/or RSS feeds (``*.xml``/``*.rss``) in the episode's folder
    or any folder above it.

    An RSS ``<item>`` is matched to an episode by its ``<enclosure url>`` file name (then by stem); its
    title, date, description, guid and duration, plus the channel's title as ``show``, go to ``meta``.
    Per-episode JSON fields override RSS fields. Episodes are whole files (no ``start``/``duration``):
    the VAD segment stage cuts them. An episode JSON that is not a UTF-8 JSON object rejects its
    episode; a feed that is not valid XML is rejected as its own row and its episodes go on without it.
    Transcripts are not read: a tree with LibriSpeech ``*.trans.txt`` or same-stem ``.txt`` files gets a
    warning naming the kind that reads them.
    """

    name = "podcasts"

    def discover(self, root: str, source: str = "podcasts", **_: Any) -> Iterator[dict]:
        root = check_root(root, "podcasts")
        feeds: dict[str, dict[str, dict[str, Any]]] = {}  # folder -> enclosure name -> item fields
        ignored = {"librispeech": 0, "folder": 0}  # transcripts this kind does not read, by the kind that does
        for d, names in walk(root):
            parent = feeds.get(os.path.dirname(d), {}) if d != root else {}
            here = dict(parent)
            for n in names:
                if n.lower().endswith(RSS_EXTS):
                    p = os.path.join(d, n)
                    try:
                        here.update(parse_rss(p))
                    except (ET.ParseError, OSError, ValueError) as e:
                        yield rejected(source, None, n, f"{p}: not a readable RSS feed ({e}); fix the XML or remove "
                                       f"it (its episodes are kept without feed metadata)", input=p)
            if here:
                feeds[d] = here
            name_set = set(names)
            ignored["librispeech"] += sum(n.endswith(".trans.txt") for n in names)
            stems = {os.path.splitext(n)[0] for n in names if is_audio(n)}
            ignored["folder"] += sum(n.endswith(".txt") and n[:-4] in stems for n in names)
            for n in names:
                if not is_audio(n):
                    continue
                path = os.path.join(d, n)
                stem = os.path.splitext(n)[0]
                key = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "-")
                meta: dict[str, Any] = {"episode": stem}
                item = here.get(n) or here.get(stem)
                if item:
                    meta.update(item)
                if stem + ".json" in name_set:
                    jpath = os.path.join(d, stem + ".json")
                    try:
                        info = json.loads(read_utf8(jpath))
                        if not isinstance(info, dict):
                            raise ValueError(f"expected a JSON object, got {type(info).__name__}")
                    except (TextError, ValueError, OSError) as e:
                        reason = str(e) if isinstance(e, TextError) else (
                            f"{jpath}: not a valid episode JSON object ({e}); fix it or delete it")
                        yield rejected(source, path, key, reason, meta=meta)
                        continue
                    meta.update({k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, list))})
                yield make_item(source, path, key, speaker=_speaker(meta), meta=meta)
        _warn_ignored(root, ignored)


def _warn_ignored(root: str, ignored: dict[str, int]) -> None:
    """Why: ``ingest podcasts`` on a transcribed tree used to drop every transcript without a word."""
    what = {"librispeech": "LibriSpeech transcripts (*.trans.txt)", "folder": "same-stem .txt transcripts"}
    for kind, n in ignored.items():
        if n:
            log.warning("%s: %d %s were ignored: the podcasts kind reads no transcripts; to keep them, ingest as "
                        "kind %s (`slmfactory ingest %s %s -o OUT`)", root, n, what[kind], kind, kind, root)


def _speaker(meta: dict[str, Any]) -> str | None:
    v = meta.get("speaker") or meta.get("host")
    return str(v) if v else None


def parse_rss(path: str) -> dict[str, dict[str, Any]]:
    """RSS ``<item>``s keyed by their enclosure's file name and its stem (URL-decoded, no query)."""
    tree = ET.parse(path)
    channel = tree.getroot().find("channel")
    if channel is None:
        raise ValueError("no <channel> element")
    show = (channel.findtext("title") or "").strip() or None
    out: dict[str, dict[str, Any]] = {}
    for it in channel.findall("item"):
        enc = it.find("enclosure")
        url = enc.get("url") if enc is not None else None
        if not url:
            continue
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        fields = {
            "show": show,
            "title": _text(it, "title"),
            "pub_date": _text(it, "pubDate"),
            "description": _text(it, "description") or _text(it, f"{ITUNES}summary"),
            "guid": _text(it, "guid"),
            "rss_duration": _text(it, f"{ITUNES}duration"),
            "enclosure_url": url,
            "rss_file": os.path.basename(path),
        }
        fields = {k: v for k, v in fields.items() if v}
        out.setdefault(name, fields)
        out.setdefault(os.path.splitext(name)[0], fields)
    return out


def _text(el: ET.Element, tag: str) -> str | None:
    v = el.findtext(tag)
    return v.strip() if v and v.strip() else None
