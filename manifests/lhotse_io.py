"""Lhotse manifests in: recordings / supervisions / cuts JSONL(.gz), read directly (export: ``lhotse_export``).

Why no ``lhotse`` dependency: its JSONL format is plain JSON (one ``Recording``, ``SupervisionSegment`` or
``MonoCut`` dict per line), and the package pulls a large dependency tree. We read the fields we need and
write only the fields Lhotse's ``from_dict`` accepts, so ``lhotse.load_manifest`` reads our export.

Format reminders (Lhotse >= 1.8): a recording is ``{id, sources: [{type: file, channels, source}],
sampling_rate, num_samples, duration, channel_ids}``; a supervision ``{id, recording_id, start, duration,
channel, text, speaker, language, gender, custom, alignment: {word: [[symbol, start, duration, score]]}}``
with times relative to the recording; a MonoCut ``{id, start, duration, channel, supervisions (times
relative to the cut), recording, type: MonoCut}``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import check_root, files_with_suffix, make_item, path_problem, rejected
from .json_lines import json_objects
from .schema import seconds_problem

SUFFIXES = (".jsonl", ".jsonl.gz")
log = logging.getLogger("slmfactory.manifests.lhotse_io")


class Lhotse(Corpus):
    """Recordings / supervisions / cuts JSONL(.gz) manifests (a file or a folder of them).

    Layout: a recordings/supervisions/cuts JSONL(.gz) file, or a folder of them
    (``*_recordings_*.jsonl.gz``, ``*_supervisions_*.jsonl.gz``, ``*_cuts_*.jsonl.gz``; the kind of each
    file is read from its first line, not its name).

    Each supervision is one segment (``start``/``duration``/``text``/``speaker`` from it, audio from its
    recording); each MonoCut is one segment whose text joins its supervisions'; a recording no
    supervision names is one whole-file item (text None). Relative audio paths resolve against the
    manifest's folder, then the working directory. Recordings are indexed in memory (one small dict
    each). Lines that are not JSON, unknown recording ids, non-file sources (url/command/memory) and
    mixed/padding cuts are rejected with the fix.

    A folder holding both supervisions and cuts (a recipe's output after feature extraction) describes
    the same segments twice: ``use="auto"`` takes the supervisions (``use="cuts"`` the cuts) and logs
    which files it left aside.

    Every line becomes an item or an error row naming ``file:line`` and the fix, whatever it holds
    (start/duration that are not finite seconds in [0, 1e6], wrong types, missing files, directories,
    FIFOs: checked with ``os.stat``, never opened). Audio outside the manifest's folder (absolute paths
    elsewhere, ``../``, the working-directory fallback, escaping symlinks) is refused unless the input
    sets ``allow_outside_root: true`` (``input.allow_outside_root=true`` on the command line), e.g. to
    re-import an export whose sources point at the original corpus.
    """

    name = "lhotse"

    def discover(self, root: str, source: str = "lhotse", use: str = "auto", allow_outside_root: bool = False,
                 **_: Any) -> Iterator[dict]:
        if use not in ("auto", "supervisions", "cuts"):
            raise ValueError(f"lhotse option use={use!r}; choose auto, supervisions or cuts")
        root = check_root(root, "Lhotse manifest", want_dir=False)
        files = files_with_suffix(root, SUFFIXES)
        kinds = {f: _file_kind(f) for f in files}
        present = set(kinds.values())
        if {"supervisions", "cuts"} <= present:
            drop = "supervisions" if use == "cuts" else "cuts"
            left = [f for f in files if kinds[f] == drop]
            log.warning("lhotse: both supervisions and cuts under %s; importing %s, leaving aside %s (option use=)",
                        root, "cuts" if drop == "supervisions" else "supervisions", ", ".join(left))
            kinds = {f: ("ignored" if k == drop else k) for f, k in kinds.items()}
        allow = bool(allow_outside_root)
        recordings: dict[str, dict[str, Any]] = {}
        for f in files:
            if kinds[f] == "recordings":
                for where, obj, err in _objects(f):
                    if err is None and isinstance(obj.get("id"), str):
                        recordings[obj["id"]] = {**obj, "_dir": os.path.dirname(f), "_where": where}
                    else:
                        yield rejected(source, None, os.path.basename(where),
                                       err or f"{where}: recording has no string id; fix the line", input=where)
        used: set[str] = set()
        for f in files:
            if kinds[f] == "supervisions":
                for where, obj, err in _objects(f):
                    if err is not None:
                        yield rejected(source, None, os.path.basename(where), err, input=where)
                        continue
                    used.add(str(obj.get("recording_id")))
                    yield _safe(_supervision_item, obj, recordings, source, where, allow)
            elif kinds[f] == "cuts":
                for where, obj, err in _objects(f):
                    if isinstance(obj.get("recording"), dict):
                        used.add(str(obj["recording"].get("id")))
                    yield (rejected(source, None, os.path.basename(where), err, input=where) if err
                           else _safe(_cut_item, obj, source, where, allow))
            elif kinds[f] is None:
                yield rejected(source, None, os.path.basename(f), f"{f}: not a Lhotse recordings/supervisions/cuts "
                               f"manifest (first line has none of sources/recording_id/type); remove it from the "
                               f"folder", input=f)
        for rid, rec in recordings.items():
            if rid in used:
                continue
            path, err = _audio_path(rec, None, allow)
            meta = {"lhotse_id": rid, "recording_id": rid}
            if err:
                yield rejected(source, path, rid, f"{rec['_where']}: {err}", meta=meta, input=rec["_where"])
            else:
                yield make_item(source, path, rid, meta=meta, input=path)


def _file_kind(path: str) -> str | None:
    for _, obj, err in _objects(path):
        if err:
            continue
        if "sources" in obj:
            return "recordings"
        if "recording_id" in obj:
            return "supervisions"
        if "type" in obj or "recording" in obj:
            return "cuts"
        return None
    return None


def _objects(path: str) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    for _, where, obj, err in json_objects(path):
        yield where, obj or {}, err


def _safe(make: Any, obj: dict[str, Any], *args: Any) -> dict[str, Any]:
    """``make(obj, ...)``, or an error row naming the line: a bad line never aborts the run."""
    try:
        return make(obj, *args)
    except Exception as e:  # noqa: BLE001
        where = args[-2]
        return rejected(args[-3], None, os.path.basename(where), f"{where}: cannot use this line "
                        f"({type(e).__name__}: {str(e)[:200]}); fix the line", input=where)


def _channels(v: Any) -> set[Any]:
    items = v if isinstance(v, list) else [v]
    return {c for c in items if isinstance(c, (int, str)) and not isinstance(c, bool)}


def _audio_path(rec: dict[str, Any], channel: Any, allow_outside_root: bool) -> tuple[str | None, str | None]:
    """The file holding ``channel`` of a recording, or an error naming why it cannot be used."""
    sources = rec.get("sources")
    sources = [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    wanted = _channels(channel) if channel is not None else set()
    chosen = next((s for s in sources if wanted & _channels(s.get("channels"))), sources[0] if sources else None)
    if chosen is None:
        return None, f"recording {rec.get('id')!r} has no sources; add a file source"
    if chosen.get("type") != "file":
        return None, (f"recording {rec.get('id')!r} has a {chosen.get('type')!r} source; only 'file' sources are "
                      f"supported: download/extract the audio and point the source at the file")
    src = chosen.get("source")
    if not isinstance(src, str) or not src:
        return None, f"recording {rec.get('id')!r} has a file source without a path string; fix the source"
    base = rec.get("_dir", "")
    cand = os.path.normpath(os.path.join(base, src))
    if not os.path.isabs(src) and not os.path.exists(cand) and os.path.exists(src):
        cand = os.path.abspath(src)
    bad = path_problem(cand, base, allow_outside_root, missing_hint=" (relative sources resolve against the "
                       "manifest's folder, then the working directory)")
    return cand, bad


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _times_problem(obj: dict[str, Any], what: str) -> str | None:
    bad = seconds_problem("start", obj.get("start")) or seconds_problem("duration", obj.get("duration"), True)
    return None if bad is None else f"{what} needs start >= 0 and duration > 0: {bad}"


def _supervision_item(sup: dict[str, Any], recordings: dict[str, dict[str, Any]], source: str,
                      where: str, allow_outside_root: bool) -> dict[str, Any]:
    sid = str(sup.get("id") or os.path.basename(where))
    rid = sup.get("recording_id")
    meta = {k: sup[k] for k in ("language", "gender", "channel", "custom", "alignment") if sup.get(k) is not None}
    meta.update({"lhotse_id": sid, "recording_id": rid})
    start, duration = _num(sup.get("start")), _num(sup.get("duration"))
    kw = dict(speaker=sup.get("speaker"), text=sup.get("text"), meta=meta, input=where)
    rec = recordings.get(rid) if isinstance(rid, str) else None
    if rec is None:
        return rejected(source, None, sid, f"{where}: supervision {sid!r} names recording {rid!r}, which no "
                        f"recordings manifest here defines; add the recordings JSONL beside it", **kw)
    path, err = _audio_path(rec, sup.get("channel"), allow_outside_root)
    err = err or _times_problem(sup, f"supervision {sid!r}")
    if err:
        return rejected(source, path, sid, f"{where}: {err}", **kw)
    return make_item(source, path, sid, start=start, duration=duration, **kw)


def _cut_item(cut: dict[str, Any], source: str, where: str, allow_outside_root: bool) -> dict[str, Any]:
    cid = str(cut.get("id") or os.path.basename(where))
    typ = cut.get("type", "MonoCut")
    sups = sorted((s for s in cut.get("supervisions") or [] if isinstance(s, dict)),
                  key=lambda s: _num(s.get("start")) or 0.0)
    speakers = {s.get("speaker") if isinstance(s.get("speaker"), (str, type(None))) else str(s["speaker"])
                for s in sups}
    texts = [s["text"] for s in sups if isinstance(s.get("text"), str) and s["text"].strip()]
    rec = cut.get("recording") if isinstance(cut.get("recording"), dict) else None
    meta: dict[str, Any] = {"lhotse_id": cid, "recording_id": rec.get("id") if rec else None,
                            "supervisions": [{k: s.get(k) for k in ("id", "start", "duration", "text", "speaker")}
                                             for s in sups]}
    if cut.get("custom"):
        meta["custom"] = cut["custom"]
    kw = dict(speaker=speakers.pop() if len(speakers) == 1 else None, text=" ".join(texts) if texts else None,
              meta=meta, input=where)
    if typ != "MonoCut" or rec is None:
        return rejected(source, None, cid, f"{where}: cut {cid!r} is a {typ} without its own recording; only "
                        f"MonoCuts are imported: export the cuts' recordings and supervisions instead "
                        f"(`lhotse cut decompose`)", **kw)
    path, err = _audio_path({**rec, "_dir": os.path.dirname(where.rsplit(":", 1)[0])}, cut.get("channel"),
                            allow_outside_root)
    err = err or _times_problem(cut, f"cut {cid!r}")
    if err:
        return rejected(source, path, cid, f"{where}: {err}", **kw)
    start, duration = _num(cut.get("start")), _num(cut.get("duration"))
    return make_item(source, path, cid, start=start, duration=duration, **kw)
