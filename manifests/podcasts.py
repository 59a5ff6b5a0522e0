"""Podcast folders: long episodes, optional per-episode JSON or an RSS feed; VAD segments them later."""
from __future__ import annotations

import json
import os
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import TextError, check_root, is_audio, make_item, read_utf8, rejected, walk

RSS_EXTS = (".xml", ".rss")
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


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
    """

    name = "podcasts"

    def discover(self, root: str, source: str = "podcasts", **_: Any) -> Iterator[dict]:
        root = check_root(root, "podcasts")
        feeds: dict[str, dict[str, dict[str, Any]]] = {}  # folder -> enclosure name -> item fields
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
