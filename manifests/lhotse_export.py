"""Lhotse manifests out: recordings + supervisions + a ``CutSet`` (JSONL.gz), and Lhotse Shar, from manifest rows.

Why the JSONL is written by hand: Lhotse's manifests are plain JSON, and writing them needs no ``lhotse``
import (it stays an optional extra). We write only the fields Lhotse's ``from_dict`` accepts, so
``lhotse.load_manifest`` / ``CutSet.from_file`` read our export (the format is summarised in
:mod:`slmfactory.manifests.lhotse_io`, which reads it back). One cut per supervision: the segment, its
recording embedded, the supervision (and word alignment) relative to the cut start, as ``CutSet.from_manifests``
+ ``trim_to_supervisions`` would make it. Shar (``shar=True``: ``OUT/shar/cuts.XXXXXX.jsonl.gz`` +
``recording.XXXXXX.tar`` of FLAC clips, for sequential reads on a cluster) is written by Lhotse itself
(``CutSet.to_shar``), so it needs ``pip install 'slmfactory[lhotse]'``.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from typing import Any, Iterable

from .audio import AudioError, probe


def export_lhotse(rows: Iterable[dict[str, Any]], out_dir: str, prefix: str = "slmfactory", shar: bool = False,
                  sampling_rate: int | None = None, shard_size: int = 1000) -> dict[str, Any]:
    """Write ``<prefix>_recordings.jsonl.gz``, ``<prefix>_supervisions.jsonl.gz`` and ``<prefix>_cuts.jsonl.gz``
    from manifest rows (and ``shar/`` with ``shar=True``, clips resampled to ``sampling_rate`` when set).

    One recording per distinct ``audio_path`` (whole-file facts probed from the file header), one
    supervision per row with audio (``id`` = our row id, times relative to the recording). ``words``
    (times relative to the segment start, as our aligner writes them) become a Lhotse word alignment.
    Text-only rows and rows whose audio cannot be probed are skipped and counted in the returned summary
    (``skipped``: list of (id, reason)). Output is deterministic (gzip mtime 0, rows in manifest order).
    """
    os.makedirs(out_dir, exist_ok=True)
    rec_path = os.path.join(out_dir, f"{prefix}_recordings.jsonl.gz")
    sup_path = os.path.join(out_dir, f"{prefix}_supervisions.jsonl.gz")
    cut_path = os.path.join(out_dir, f"{prefix}_cuts.jsonl.gz")
    recs: dict[str, str | None] = {}  # audio_path -> recording id (None when unprobeable)
    rec_dicts: dict[str, dict[str, Any]] = {}
    rec_ids: set[str] = set()
    skipped: list[tuple[str, str]] = []
    n_sup = 0
    with _gz_writer(rec_path) as rf, _gz_writer(sup_path) as sf_, _gz_writer(cut_path) as cf:
        for row in rows:
            path = row.get("audio_path")
            rid_key = row.get("id") or ""
            if not path:
                skipped.append((rid_key, "text-only row (no audio_path)"))
                continue
            if path not in recs:
                try:
                    info = probe(path)
                except (AudioError, OSError, RuntimeError) as e:
                    recs[path] = None
                    skipped.append((rid_key, f"{path}: cannot probe audio ({e})"))
                    continue
                rid = _recording_id(path, rec_ids)
                recs[path] = rid
                chans = list(range(max(1, info.num_channels)))
                rec_dicts[rid] = {"id": rid, "sources": [{"type": "file", "channels": chans, "source": path}],
                                  "sampling_rate": info.sample_rate, "num_samples": info.num_frames,
                                  "duration": info.num_frames / info.sample_rate, "channel_ids": chans}
                rf.write(_line(rec_dicts[rid]))
            rid = recs[path]
            if rid is None:
                skipped.append((rid_key, f"{path}: audio could not be probed"))
                continue
            sup = _supervision(row, rid)
            sf_.write(_line(sup))
            cf.write(_line(_cut(sup, rec_dicts[rid])))
            n_sup += 1
    summary = {"recordings": rec_path, "supervisions": sup_path, "cuts": cut_path, "num_recordings": len(rec_ids),
               "num_supervisions": n_sup, "num_cuts": n_sup, "skipped": skipped}
    if shar:
        summary["shar"] = write_shar(cut_path, os.path.join(out_dir, "shar"), sampling_rate, shard_size)
    return summary


def _cut(sup: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """The cut of one supervision: its span of the recording, the supervision shifted to start at 0."""
    start = sup["start"]
    inner = {**sup, "start": 0.0}
    if "alignment" in sup:
        inner["alignment"] = {k: [[w, round(s - start, 6), d, c] for w, s, d, c in items]
                              for k, items in sup["alignment"].items()}
    multi = isinstance(sup["channel"], list)
    return {"id": sup["id"], "start": start, "duration": sup["duration"], "channel": sup["channel"],
            "supervisions": [inner], "recording": rec, "type": "MultiCut" if multi else "MonoCut"}


def write_shar(cuts_path: str, shar_dir: str, sampling_rate: int | None = None, shard_size: int = 1000) -> list[str]:
    """Lhotse Shar from our cuts: ``cuts.XXXXXX.jsonl.gz`` + ``recording.XXXXXX.tar`` (FLAC), via Lhotse."""
    try:
        from lhotse import CutSet
    except ImportError as e:
        raise ImportError("Lhotse Shar export needs the `lhotse` package: pip install 'slmfactory[lhotse]' "
                          "(the JSONL manifests and cuts are written without it)") from e
    cuts = CutSet.from_file(cuts_path)
    if sampling_rate:
        cuts = cuts.resample(int(sampling_rate))
    os.makedirs(shar_dir, exist_ok=True)
    written = cuts.to_shar(shar_dir, fields={"recording": "flac"}, shard_size=shard_size, warn_unused_fields=False)
    return sorted(p for paths in written.values() for p in paths)


def _recording_id(path: str, taken: set[str]) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    rid, i = stem, 1
    while rid in taken:  # two files with the same stem in different folders
        i += 1
        rid = f"{stem}-{i}"
    taken.add(rid)
    return rid


def _supervision(row: dict[str, Any], rid: str) -> dict[str, Any]:
    start = float(row.get("start") or 0.0)
    duration = row.get("duration")
    if duration is None:
        duration = probe(row["audio_path"]).duration - start
    try:
        meta = json.loads(row.get("meta") or "{}")
    except ValueError:
        meta = {"meta": row.get("meta")}
    custom = {"source": row.get("source"), **(meta if isinstance(meta, dict) else {"meta": meta})}
    for k, v in row.items():  # small scalar columns stages added (asr_confidence, task, voice ...)
        if k.startswith("_") or k in _SUP_SKIP or isinstance(v, (list, dict, bytes)) or v is None:
            continue
        custom[k] = v
    n_ch = int(row.get("num_channels") or 1)
    sup: dict[str, Any] = {"id": row["id"], "recording_id": rid, "start": round(start, 6),
                           "duration": round(float(duration), 6), "channel": 0 if n_ch == 1 else list(range(n_ch))}
    if row.get("text") is not None:
        sup["text"] = row["text"]
    if row.get("speaker") is not None:
        sup["speaker"] = row["speaker"]
    lang = meta.get("language") if isinstance(meta, dict) else None
    if isinstance(lang, str):
        sup["language"] = lang
    sup["custom"] = custom
    words = row.get("words")
    if words:
        sup["alignment"] = {"word": [[w["word"], round(start + float(w["start"]), 6),
                                      round(float(w["end"]) - float(w["start"]), 6), w.get("score")]
                                     for w in words]}
    return sup


_SUP_SKIP = {"id", "audio_path", "start", "duration", "speaker", "text", "source", "meta", "sample_rate",
             "num_channels", "error", "error_stage"}


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n"


class _gz_writer:
    """A text gzip writer with mtime 0 and no file name in the header: byte-identical re-exports."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        self._raw = open(self.path, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
        self._txt = io.TextIOWrapper(self._gz, encoding="utf-8", newline="\n")
        return self._txt

    def __exit__(self, *exc):
        self._txt.close()
        self._raw.close()
        return False
