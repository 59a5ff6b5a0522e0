"""The one Arrow schema of SLM Factory: a segment row, the columns stages add, and the errors table.

Why one place: every stage, writer and reader agrees on names and types through this module, so a
column is never renamed between stages and Parquet shards from different runs concatenate.
Stages *add* columns (see ``STAGE_COLUMNS``); they never rename or drop the base columns.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterable, Mapping

import pyarrow as pa

# --- the base segment row -------------------------------------------------------------------
SEGMENT_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),  # stable: derived from source, path and offsets
    pa.field("audio_path", pa.string()),  # None for text-only rows (e.g. instructions before TTS)
    pa.field("start", pa.float64()),  # seconds into audio_path
    pa.field("duration", pa.float64()),  # seconds
    pa.field("sample_rate", pa.int32()),  # of the source file (audio is resampled on read)
    pa.field("num_channels", pa.int32()),  # of the source file (audio is down-mixed on read)
    pa.field("speaker", pa.string()),
    pa.field("text", pa.string()),
    pa.field("source", pa.string()),  # corpus name
    pa.field("meta", pa.string()),  # JSON object of corpus-specific fields
]
SEGMENT_SCHEMA = pa.schema(SEGMENT_FIELDS)
BASE_COLUMNS = [f.name for f in SEGMENT_FIELDS]

WORD_TYPE = pa.struct(
    [("word", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("score", pa.float64())]
)

# --- columns that stages add (name -> type). Add new ones here, never in a stage module. ---------
STAGE_COLUMNS: dict[str, pa.DataType] = {
    # tokenize/
    "units": pa.list_(pa.int32()),  # single-codebook units
    "codes": pa.list_(pa.list_(pa.int32())),  # multi-codebook tokens, one list per codebook
    "unit_durations": pa.list_(pa.int32()),  # run lengths after dedup, parallel to `units`
    "unit_rate_hz": pa.float64(),
    "tokenizer": pa.string(),
    # stages/ (ASR, alignment, interleaving)
    "text_original": pa.string(),
    "text_normalized": pa.string(),
    "asr_backend": pa.string(),
    "asr_confidence": pa.float64(),
    "asr_no_speech_prob": pa.float64(),  # Whisper: probability that the segment holds no speech
    "words": pa.list_(WORD_TYPE),
    "aligner": pa.string(),
    "format": pa.string(),
    "tokens": pa.list_(pa.int32()),
    "alt_formats": pa.list_(pa.string()),  # interleave: the row's other formats (pack_shards may pick one)
    "alt_tokens": pa.list_(pa.list_(pa.int32())),
    "loss_mask": pa.list_(pa.int8()),
    # stages/ quality filters (dnsmos, speech_filter)
    "dnsmos_sig": pa.float64(),  # DNSMOS P.835 speech signal quality, 1..5
    "dnsmos_bak": pa.float64(),  # DNSMOS P.835 background noise (higher = quieter background), 1..5
    "dnsmos_ovrl": pa.float64(),  # DNSMOS P.835 overall quality, 1..5
    "dnsmos_p808": pa.float64(),  # DNSMOS P.808 MOS, 1..5
    "chars_per_second": pa.float64(),  # transcript characters / duration (None without text)
    # synth/
    "voice": pa.string(),
    "tts_sample_rate": pa.int32(),  # the one rate every clip the tts stage wrote for this row is at
    "messages": pa.string(),  # JSON list of {role, text, audio}
    "task": pa.string(),
    "gate": pa.string(),
}

# Transient columns flow between stages inside one run but are never written to the manifest.
AUDIO_COLUMN = "audio"  # list<float32>: mono waveform at TARGET_SAMPLE_RATE
TRANSIENT_COLUMNS = {AUDIO_COLUMN: pa.list_(pa.float32())}
TARGET_SAMPLE_RATE = 16_000

# --- error routing ------------------------------------------------------------------------------
# A row a stage rejects keeps flowing with these two columns set; later stages pass it through
# untouched and the runner writes it to OUT/errors instead of OUT/manifest. Nothing is dropped.
ERROR_COLUMN = "error"
ERROR_STAGE_COLUMN = "error_stage"
ERROR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("input", pa.string()),  # the file or row that failed, as the user knows it
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("source", pa.string()),
        pa.field("meta", pa.string()),
    ]
)


def reject(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """Mark a row bad: it flows on untouched and lands in OUT/errors with this stage and reason."""
    row[ERROR_COLUMN] = reason
    row[ERROR_STAGE_COLUMN] = stage
    return row


def column_type(name: str) -> pa.DataType | None:
    """The declared type of a column, or None when the column is not declared (inferred)."""
    for f in SEGMENT_FIELDS:
        if f.name == name:
            return f.type
    if name in STAGE_COLUMNS:
        return STAGE_COLUMNS[name]
    if name in TRANSIENT_COLUMNS:
        return TRANSIENT_COLUMNS[name]
    if name in (ERROR_COLUMN, ERROR_STAGE_COLUMN):
        return pa.string()
    return None


def segment_id(source: str, audio_path: str | None, start: float = 0.0, duration: float | None = None,
               key: str | None = None) -> str:
    """Stable, unique id from where the segment comes from.

    Readable prefix (``key`` or the file stem, and the offset in ms) plus a short hash. With a ``key``
    (the corpus recipe's name for the file, e.g. a LibriSpeech utterance id or a path relative to the
    corpus root) the id does not depend on where the corpus lives, so the same corpus gives the same ids
    on every machine; without one the absolute path is hashed. No counters, nothing random.
    Never raises: a start or duration that is not a usable number of seconds (a rejected row's) is hashed
    as written, so even a bad row gets a stable id.
    """
    stem = key if key is not None else (audio_path or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    ident = key if key is not None else audio_path
    start_ms, dur_ms = _ms(start or 0.0), (-1 if duration is None else _ms(duration))
    raw = f"{start_ms if start_ms is not None else repr(start)}|{dur_ms if dur_ms is not None else repr(duration)}"
    digest = hashlib.sha1(f"{source}|{ident}|{raw}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{stem}_{start_ms or 0:08d}_{digest}"


# --- seconds fields (start, duration) ------------------------------------------------------------
MAX_SECONDS = 1e6  # ~11.6 days: longer than any real recording, far below where seconds*1000 overflows


def seconds_problem(name: str, value: Any, positive: bool = False) -> str | None:
    """Why ``value`` is not a usable ``name`` in seconds (a finite number in [0, MAX_SECONDS], > 0 when
    ``positive``), or None. Strings, booleans, lists, objects, NaN, inf and 1e308 are all refused here."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        return (f"{name} must be a number of seconds ({bound}), got {type(value).__name__} {shown}; write a plain "
                f"JSON number such as 1.5")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or v < 0 or (positive and v == 0) or v > MAX_SECONDS:
        return (f"{name} must be a number of seconds ({bound}), got {value!r:.40}; it must be finite and at most "
                f"{MAX_SECONDS:.0f} s: fix the value (or drop it to use the whole file)")
    return None


def _ms(seconds: Any) -> int | None:
    """Milliseconds for an id, or None when ``seconds`` is not a usable number (see :func:`seconds_problem`)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    try:
        v = float(seconds)
    except OverflowError:
        return None
    return int(round(v * 1000)) if math.isfinite(v) and abs(v) <= MAX_SECONDS else None


def utf8_safe(s: str) -> tuple[str, bool]:
    """``(s, True)`` when ``s`` encodes as UTF-8 (Arrow needs that), else an escaped copy and False."""
    try:
        s.encode("utf-8")
        return s, True
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8"), False


def column_value(name: str, value: Any) -> tuple[Any, str | None]:
    """An input field kept as a column, as the column will hold it, or ``(None, why not)``.

    Declared columns must fit their Arrow type (a list or object for a declared string column such as
    ``messages`` is stored as JSON); undeclared ones become strings (JSON for non-strings), so the rows of
    one run always give one column type and no value can make a shard unwritable.
    """
    if value is None or name.startswith("_"):
        return value, None
    typ = column_type(name)
    if typ is None or pa.types.is_string(typ):
        if isinstance(value, str):
            return value, None
        try:
            return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False), None
        except (TypeError, ValueError) as e:
            return None, f"{name} cannot be stored as JSON ({e}); fix the field"
    try:
        pa.array([value], type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
        return None, f"{name} must fit the column type {typ} ({str(e)[:80]}); fix the field"
    return value, None


def id_key(row_id: str) -> str:
    """The ``key`` part of an id made by :func:`segment_id` (segments of a file reuse the file's key)."""
    parts = row_id.rsplit("_", 2)
    return parts[0] if len(parts) == 3 else row_id


def dumps_meta(meta: Mapping[str, Any] | None) -> str:
    """Meta as canonical JSON (sorted keys) so identical inputs give byte-identical shards."""
    return json.dumps(dict(meta or {}), sort_keys=True, ensure_ascii=False, default=str)


def table_from_rows(rows: list[dict[str, Any]] | Mapping[str, list], drop_transient: bool = False) -> pa.Table:
    """Build an Arrow table with the declared types (validation at a stage boundary).

    Accepts a list of row dicts or a dict of columns. Unknown columns are inferred by Arrow;
    declared columns are cast, so a wrong type fails here with the column's name.
    """
    if isinstance(rows, Mapping):
        columns = dict(rows)
    else:
        names: list[str] = []
        for r in rows:
            for k in r:
                if k not in names:
                    names.append(k)
        columns = {n: [r.get(n) for r in rows] for n in names}
    arrays, fields = [], []
    for name, values in columns.items():
        if drop_transient and name in TRANSIENT_COLUMNS:
            continue
        typ = column_type(name)
        try:
            arr = _numeric_list_array(values, typ)
            if arr is None:
                arr = pa.array(_plain(values), type=typ) if typ is not None else pa.array(_plain(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise TypeError(f"column {name!r} does not match the declared type {typ}: {e}") from e
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _numeric_list_array(values: list[Any], typ: pa.DataType | None) -> pa.Array | None:
    """Fast path: a column of 1-D numpy arrays (waveforms, units) -> one ListArray without Python lists.

    Why: ``tolist()`` on a minute of 16 kHz audio makes a million Python floats; this concatenates
    the buffers once instead. Returns None when the column is not of that shape.
    """
    import numpy as np

    values = list(values)
    if not values or not all(isinstance(v, np.ndarray) and v.ndim == 1 for v in values if v is not None):
        return None
    if all(v is None for v in values):
        return None
    if typ is not None and not (pa.types.is_list(typ) and (pa.types.is_floating(typ.value_type)
                                                           or pa.types.is_integer(typ.value_type))):
        return None
    lengths = np.array([0 if v is None else len(v) for v in values], dtype=np.int64)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [v for v in values if v is not None]
    flat = np.concatenate(present) if present else np.zeros(0)
    value_type = typ.value_type if typ is not None else pa.from_numpy_dtype(flat.dtype)
    mask = pa.array([v is None for v in values]) if any(v is None for v in values) else None
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type), mask=mask)


def _plain(values: Iterable[Any]) -> list[Any]:
    """numpy arrays inside a column (waveforms, units) become lists Arrow can type."""
    out = []
    for v in values:
        if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
            v = v.tolist()
        out.append(v)
    return out


def validate_segments(table: pa.Table) -> None:
    """Raise with the column name when a base column is missing or has the wrong type."""
    for f in SEGMENT_FIELDS:
        if f.name not in table.column_names:
            raise ValueError(f"manifest is missing column {f.name!r}; columns are {table.column_names}")
        if not table.schema.field(f.name).type.equals(f.type) and table.num_rows:
            raise ValueError(f"column {f.name!r} has type {table.schema.field(f.name).type}, expected {f.type}")
    ids = table.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        raise ValueError("manifest ids are not unique")
