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

import json
import logging
import os
from typing import Any, Iterator

from .corpus import Corpus
from .discovery import check_root, files_with_suffix, make_item, open_lines, rejected

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
    """

    name = "lhotse"

    def discover(self, root: str, source: str = "lhotse", use: str = "auto", **_: Any) -> Iterator[dict]:
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
                    yield _supervision_item(obj, recordings, source, where)
            elif kinds[f] == "cuts":
                for where, obj, err in _objects(f):
                    if isinstance(obj.get("recording"), dict):
                        used.add(str(obj["recording"].get("id")))
                    yield (rejected(source, None, os.path.basename(where), err, input=where) if err
                           else _cut_item(obj, source, where))
            elif kinds[f] is None:
                yield rejected(source, None, os.path.basename(f), f"{f}: not a Lhotse recordings/supervisions/cuts "
                               f"manifest (first line has none of sources/recording_id/type); remove it from the "
                               f"folder", input=f)
        for rid, rec in recordings.items():
            if rid in used:
                continue
            path, err = _audio_path(rec, None)
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
    for lineno, raw in open_lines(path):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            yield where, {}, f"{where}: not valid JSON ({e}); fix or remove the line"
            continue
        if not isinstance(obj, dict):
            yield where, {}, f"{where}: expected a JSON object, got {type(obj).__name__}; fix the line"
            continue
        yield where, obj, None


def _audio_path(rec: dict[str, Any], channel: Any) -> tuple[str | None, str | None]:
    """The file holding ``channel`` of a recording, or an error naming why it cannot be used."""
    sources = [s for s in rec.get("sources") or [] if isinstance(s, dict)]
    wanted = set(channel) if isinstance(channel, list) else ({channel} if channel is not None else set())
    chosen = next((s for s in sources if wanted & set(s.get("channels") or [])), sources[0] if sources else None)
    if chosen is None:
        return None, f"recording {rec.get('id')!r} has no sources; add a file source"
    if chosen.get("type") != "file":
        return None, (f"recording {rec.get('id')!r} has a {chosen.get('type')!r} source; only 'file' sources are "
                      f"supported: download/extract the audio and point the source at the file")
    src = str(chosen.get("source"))
    if os.path.isabs(src):
        return src, None
    cand = os.path.normpath(os.path.join(rec.get("_dir", ""), src))
    if not os.path.exists(cand) and os.path.exists(src):
        cand = os.path.abspath(src)
    return cand, None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _supervision_item(sup: dict[str, Any], recordings: dict[str, dict[str, Any]], source: str,
                      where: str) -> dict[str, Any]:
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
    path, err = _audio_path(rec, sup.get("channel"))
    if err:
        return rejected(source, path, sid, f"{where}: {err}", **kw)
    if start is None or duration is None or start < 0 or duration <= 0:
        return rejected(source, path, sid, f"{where}: supervision {sid!r} needs numeric start >= 0 and duration > 0, "
                        f"got {sup.get('start')!r}/{sup.get('duration')!r}; fix the line", **kw)
    return make_item(source, path, sid, start=start, duration=duration, **kw)


def _cut_item(cut: dict[str, Any], source: str, where: str) -> dict[str, Any]:
    cid = str(cut.get("id") or os.path.basename(where))
    typ = cut.get("type", "MonoCut")
    sups = sorted((s for s in cut.get("supervisions") or [] if isinstance(s, dict)),
                  key=lambda s: _num(s.get("start")) or 0.0)
    speakers = {s.get("speaker") for s in sups}
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
    path, err = _audio_path({**rec, "_dir": os.path.dirname(where.rsplit(":", 1)[0])}, cut.get("channel"))
    if err:
        return rejected(source, path, cid, f"{where}: {err}", **kw)
    start, duration = _num(cut.get("start")), _num(cut.get("duration"))
    if start is None or duration is None or start < 0 or duration <= 0:
        return rejected(source, path, cid, f"{where}: cut {cid!r} needs numeric start >= 0 and duration > 0; fix "
                        f"the line", **kw)
    return make_item(source, path, cid, start=start, duration=duration, **kw)
