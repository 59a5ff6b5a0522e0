"""Local Hugging Face datasets in: a ``save_to_disk`` folder, or Parquet/Arrow files, read with pyarrow.

Why pyarrow and not ``datasets.load_from_disk``: both formats are Arrow underneath; record batches are
read lazily (the ``datasets`` library would copy Parquet into its cache first), and an ``Audio`` column
is just ``struct<bytes: binary, path: string>`` in storage. Audio that lives only as bytes inside the
dataset is written once to ``extract_dir`` (one file per row, named by the row's key, never rewritten),
because the pipeline's decode stage reads files.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .corpus import Corpus
from .discovery import check_root, make_item, path_problem, rejected, walk

PATH_COLUMNS = ("audio_path", "path", "audio_filepath", "file", "filename")
TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
ID_COLUMNS = ("id", "key", "utt_id", "segment_id", "audio_id")
MAGIC = [(b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
         (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3")]


class HfDataset(Corpus):
    """A local Hugging Face dataset (save_to_disk folder, Parquet or Arrow files) with audio or text.

    Layout: a Hub-style folder (``README.md`` whose ``configs:`` name the Parquet files: the default config is
    read, as ``load_dataset(folder)`` does; every SLM Factory export and run folder has one), a local dataset
    folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (``state.json`` +
    ``data-*.arrow``), or a ``.parquet``/``.arrow`` file or folder of them.

    Audio comes from an ``Audio`` column (``struct<bytes, path>``; bytes are extracted to
    ``extract_dir``, default ``~/.cache/slmfactory/hf_audio/<hash of root>``) or a path column
    (``audio_path``, ``path``, ``audio_filepath``...; relative paths resolve against the dataset
    folder). Text from ``text``/``sentence``/``transcript``..., speaker from ``speaker``/``speaker_id``...,
    the id key from ``id``/``key``...; other scalar columns go to ``meta``. Rows without audio are text-only
    rows. ``split`` picks one split of a DatasetDict (default: all, in sorted order). A row whose audio is
    neither bytes nor an existing regular file (``os.stat``; never opened otherwise), or that has neither
    audio nor text nor any other field, is rejected; so is a data file that cannot be read (one error row).

    A path column naming a file outside the dataset folder (absolute elsewhere, ``../``, an escaping
    symlink) is refused unless the input sets ``allow_outside_root: true`` (``input.allow_outside_root=true``
    on the command line). Extracted bytes live in ``extract_dir`` and are always allowed.
    """

    name = "hf"

    def discover(self, root: str, source: str = "hf", split: str | None = None, audio_column: str | None = None,
                 text_column: str | None = None, extract_dir: str | None = None, allow_outside_root: bool = False,
                 **_: Any) -> Iterator[dict]:
        root = check_root(root, "Hugging Face dataset", want_dir=False)
        base = root if os.path.isdir(root) else os.path.dirname(root)
        extract_dir = extract_dir or os.path.join(
            os.path.expanduser("~/.cache/slmfactory/hf_audio"), hashlib.sha1(root.encode()).hexdigest()[:12])
        for split_name, path in _data_files(root, split):
            for b, batch in _safe_batches(path):
                if isinstance(batch, str):
                    yield rejected(source, None, f"{split_name or 'file'}-{b:05d}", batch, input=path)
                    continue
                acol = audio_column or _audio_column(batch.schema)
                tcol = text_column or _first(batch.schema.names, TEXT_COLUMNS)
                scol = _first(batch.schema.names, SPEAKER_COLUMNS)
                icol = _first(batch.schema.names, ID_COLUMNS)
                for i, row in enumerate(batch.to_pylist()):
                    where = f"{path}:batch{b}:row{i}"
                    key = (str(row[icol]) if icol and row.get(icol) not in (None, "")
                           else f"{split_name or 'row'}-{b:05d}-{i:05d}")
                    meta = {k: v for k, v in row.items()
                            if k not in (acol, tcol, scol) and isinstance(v, (str, int, float, bool))}
                    if split_name:
                        meta["split"] = split_name
                    kw = dict(speaker=row.get(scol) if scol else None, meta=meta, input=where,
                              text=row.get(tcol) if tcol and isinstance(row.get(tcol), str) else None)
                    try:
                        audio = _audio_file(row.get(acol) if acol else None, base, extract_dir, key,
                                            allow_outside_root)
                        if audio is None and not (kw["text"] or "").strip() and not any(
                                v is not None for k, v in row.items() if k not in (acol, tcol, scol, icol)):
                            raise ValueError("no audio, no text and no other field: nothing to process; fix or "
                                             "drop the row")
                    except Exception as e:  # noqa: BLE001 - a bad row never aborts the run
                        yield rejected(source, None, key, f"{where}: {e}", **kw)
                        continue
                    yield make_item(source, audio, key, **kw)


def _data_files(root: str, split: str | None) -> list[tuple[str | None, str]]:
    """(split name, file) pairs in a stable order."""
    if os.path.isfile(root):
        return [(None, root)]
    dd = os.path.join(root, "dataset_dict.json")
    if os.path.exists(dd):
        splits = json.load(open(dd)).get("splits") or sorted(
            n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
        if split is not None:
            if split not in splits:
                raise ValueError(f"{root}: no split {split!r}; splits are {splits}")
            splits = [split]
        return [(s, f) for s in sorted(splits) for _, f in _data_files(os.path.join(root, s), None)]
    carded = _card_files(root)
    if carded is not None:
        return [(sp, f) for sp, f in carded if split is None or sp == split]
    st = os.path.join(root, "state.json")
    if os.path.exists(st):
        files = [os.path.join(root, f["filename"]) for f in json.load(open(st)).get("_data_files", [])]
        return [(None, f) for f in files]
    files = [os.path.join(d, n) for d, names in walk(root) for n in names if n.endswith((".parquet", ".arrow"))]
    if not files:
        raise FileNotFoundError(f"{root}: no state.json, dataset_dict.json, .parquet or .arrow files; save the "
                                f"dataset with `ds.save_to_disk(path)` or `ds.to_parquet(path)`")
    return [(None, f) for f in files]


def _card_files(root: str) -> list[tuple[str | None, str]] | None:
    """(split, file) pairs of the default config a ``README.md`` ``configs:`` section names, or None."""
    import glob

    import yaml

    readme = os.path.join(root, "README.md")
    if not os.path.isfile(readme):
        return None
    text = open(readme, encoding="utf-8").read()
    if not text.startswith("---"):
        return None
    try:
        configs = (yaml.safe_load(text.split("---", 2)[1]) or {}).get("configs")
    except yaml.YAMLError:
        return None
    if not isinstance(configs, list) or not configs:
        return None
    conf = next((c for c in configs if isinstance(c, dict) and c.get("default")), configs[0])
    data_files = conf.get("data_files") if isinstance(conf, dict) else None
    if isinstance(data_files, (str, list)) and not (isinstance(data_files, list) and data_files
                                                    and isinstance(data_files[0], dict)):
        data_files = [{"split": "train", "path": data_files}]
    out = []
    for entry in data_files or []:
        paths = entry.get("path") if isinstance(entry, dict) else None
        for pattern in [paths] if isinstance(paths, str) else paths or []:
            out += [(entry.get("split"), f) for f in sorted(glob.glob(os.path.join(root, pattern)))]
    return out or None


def _safe_batches(path: str) -> Iterator[tuple[int, pa.RecordBatch | str]]:
    """``(index, batch)`` pairs; a file that cannot be read (further) ends with ``(index, reason)``."""
    b = 0
    try:
        for b, batch in enumerate(_batches(path)):
            yield b, batch
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError... for a corrupt file
        yield b, (f"{path}: cannot read this data file ({type(e).__name__}: {str(e)[:200]}); re-save the dataset "
                  f"(`ds.save_to_disk` / `ds.to_parquet`) or remove the file")


def _batches(path: str) -> Iterator[pa.RecordBatch]:
    if path.endswith(".parquet"):
        yield from pq.ParquetFile(path).iter_batches(batch_size=256)
        return
    with pa.memory_map(path) as src:
        try:
            reader = pa.ipc.open_stream(src)  # what save_to_disk writes
            yield from reader
        except pa.ArrowInvalid:
            src.seek(0)
            f = pa.ipc.open_file(src)
            for i in range(f.num_record_batches):
                yield f.get_batch(i)


def _audio_column(schema: pa.Schema) -> str | None:
    for f in schema:
        if pa.types.is_struct(f.type) and {"bytes", "path"} <= {c.name for c in f.type}:
            return f.name
    return _first(schema.names, PATH_COLUMNS)


def _first(names: list[str], wanted: tuple[str, ...]) -> str | None:
    return next((w for w in wanted if w in names), None)


def _audio_file(value: Any, base: str, extract_dir: str, key: str, allow_outside_root: bool) -> str | None:
    """A path on disk for the row's audio (extracting embedded bytes once), or None for text-only rows."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    if not isinstance(value, dict):
        raise ValueError(f"audio column holds a {type(value).__name__}, not a path or {{bytes, path}}; "
                         f"cast it with `ds.cast_column(name, Audio())` before saving")
    data, path = value.get("bytes"), value.get("path")
    if path is not None and not isinstance(path, str) or data is not None and not isinstance(data, bytes):
        raise ValueError(f"audio holds path={type(path).__name__}, bytes={type(data).__name__}; expected a string "
                         f"path and/or bytes: cast it with `ds.cast_column(name, Audio())` before saving")
    if data:
        ext = os.path.splitext(path or "")[1].lower() or next((e for m, e in MAGIC if data.startswith(m)), ".bin")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:100]
        out = os.path.join(extract_dir, f"{safe}-{hashlib.sha1(data).hexdigest()[:10]}{ext}")
        if not os.path.exists(out):
            os.makedirs(extract_dir, exist_ok=True)
            tmp = out + ".part"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
        return out
    if path:
        full = os.path.normpath(os.path.join(base, path))
        bad = path_problem(full, base, allow_outside_root, missing_hint=f" (relative paths resolve against {base}) "
                           f"and the row has no audio bytes; embed the audio,")
        if bad:
            raise ValueError(bad)
        return full
    return None
