"""Export a manifest to a Hugging Face ``datasets`` folder (decodable ``Audio``) or to Lhotse JSONL.

Why cut the audio: a manifest row is a segment (``start``/``duration`` into a long file); a dataset user
expects each example's audio to be exactly that segment, so it is decoded, cut, resampled and stored as
FLAC bytes inside the Arrow shards (``datasets`` decodes FLAC with torchcodec). Text-only rows get
``audio`` None. A dataset card (``README.md``) with counts, hours, sources and columns goes beside it.
``slmfactory export PATH --to hf|lhotse -o OUT`` calls :func:`export`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import card
from .clips import examples, flac_clip
from .run_manifest import iter_rows, manifest_files
from .schema import AUDIO_COLUMN, ERROR_COLUMN, ERROR_STAGE_COLUMN, TARGET_SAMPLE_RATE

TARGETS = ("hf", "lhotse")
FRONT_MATTER = ["pretty_name: SLM Factory export", "tags:", "- audio", "- speech", "- slmfactory"]


class ExportSummary(dict):
    """The export's facts (a dict) that prints as one line for the CLI: where, how many, how many left out."""

    def __str__(self) -> str:
        where = self.get("path") or os.path.dirname(str(self.get("supervisions", "")))
        n = self.get("num_rows", self.get("num_supervisions", 0))
        left = len(self.get("skipped") or [])
        return f"{where} ({n} rows" + (f", {left} left out: listed in the summary/README.md)" if left else ")")


def export(path: str | os.PathLike, to: str, out: str | os.PathLike, **opts: Any) -> dict[str, Any]:
    """Export the manifest at ``path`` to ``out`` as ``to`` = ``hf`` or ``lhotse``; returns a summary."""
    if to not in TARGETS:
        raise ValueError(f"unknown export target {to!r}; use one of {', '.join(TARGETS)}")
    files = manifest_files(path)
    if to == "lhotse":
        from .lhotse_export import export_lhotse

        return ExportSummary(export_lhotse(iter_rows(files), str(out), prefix=opts.get("prefix", "slmfactory")))
    return ExportSummary(export_hf(files, str(out), **opts))


def _kept_schema(files: list[str]) -> pa.Schema:
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    drop = {AUDIO_COLUMN, ERROR_COLUMN, ERROR_STAGE_COLUMN}
    return pa.schema([f for f in schema if not f.name.startswith("_") and f.name not in drop])


def export_hf(files: list[str], out: str, sampling_rate: int | None = TARGET_SAMPLE_RATE,
              max_shard_size: str | int = "500MB", **_: Any) -> dict[str, Any]:
    """Write a ``datasets`` folder (``save_to_disk``) with an ``audio`` column of FLAC segments.

    ``sampling_rate=None`` keeps each file's own rate (the ``Audio`` feature then has no fixed rate).
    Rows whose audio can no longer be decoded are left out and listed in the summary's ``skipped``
    (id, reason) and in the card, never silently.
    """
    import datasets

    schema = _kept_schema(files)
    features = datasets.Features.from_arrow_schema(schema)
    features[AUDIO_COLUMN] = datasets.Audio(sampling_rate=sampling_rate)
    skipped: list[tuple[str, str]] = []
    out_p = Path(out)
    if out_p.exists() and any(out_p.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty; choose a new -o folder or delete it")
    fp = hashlib.sha1(json.dumps([files, sampling_rate, [os.path.getmtime(f) for f in files]]).encode()).hexdigest()
    with tempfile.TemporaryDirectory(prefix="slmf-export-") as tmp:
        ds = datasets.Dataset.from_generator(
            _examples, features=features, cache_dir=tmp, fingerprint=fp,
            gen_kwargs={"files": tuple(files), "names": tuple(schema.names), "sampling_rate": sampling_rate,
                        "skipped": _Sink(skipped)})
        ds.save_to_disk(out, max_shard_size=max_shard_size)
        n = len(ds)
        del ds
    stats = _stats(files, {i for i, _ in skipped})
    card.write(out_p, dataset_card(stats, schema, sampling_rate, skipped, Path(files[0]).parent))
    return {"path": out, "num_rows": n, "skipped": skipped, **stats}


class _Sink:
    """Collects skipped rows from inside the generator (a list in gen_kwargs would be read as shards)."""

    def __init__(self, items: list[tuple[str, str]]):
        self.items = items

    def append(self, item: tuple[str, str]) -> None:
        self.items.append(item)


def _examples(files: tuple[str, ...], names: tuple[str, ...], sampling_rate: int | None,
              skipped: _Sink) -> Iterator[dict[str, Any]]:
    def example(row: dict[str, Any]) -> dict[str, Any]:
        path = row.get("audio_path")
        audio = {"bytes": flac_clip(path, row.get("start"), row.get("duration"), sampling_rate),
                 "path": f"{row['id']}.flac"} if path else None
        return {**{k: row.get(k) for k in names}, AUDIO_COLUMN: audio}

    yield from examples(iter_rows(list(files)), example, skipped, _reason)


def _reason(row: dict[str, Any], e: Exception) -> str:
    path = row.get("audio_path")
    return str(e) if str(e).startswith(path) else f"{path}: {e}"


def _stats(files: list[str], leave_out: set[str] = frozenset()) -> dict[str, Any]:
    """Counts of the exported rows (rows left out at export are not counted)."""
    rows = 0
    seconds = 0.0
    spk: set[str] = set()
    sources: dict[str, int] = {}
    for r in iter_rows(files, ["id", "duration", "speaker", "source"]):
        if r.get("id") in leave_out:
            continue
        rows += 1
        seconds += float(r.get("duration") or 0.0)
        if r.get("speaker") is not None:
            spk.add(r["speaker"])
        sources[str(r.get("source"))] = sources.get(str(r.get("source")), 0) + 1
    return {"rows": rows, "hours": seconds / 3600.0, "speakers": len(spk), "sources": sources}


def dataset_card(stats: dict[str, Any], schema: pa.Schema, sampling_rate: int | None,
                 skipped: list[tuple[str, str]], manifest_dir: Path) -> str:
    """A Hugging Face dataset card: YAML header, what is inside, how it was made, how to load it."""
    run_json = manifest_dir.parent / "run.json"
    recipe = None
    if run_json.exists():
        try:
            recipe = json.loads(run_json.read_text()).get("recipe")
        except ValueError:
            recipe = None
    srcs = ", ".join(f"{k} ({v})" for k, v in sorted(stats["sources"].items()))
    skipped_txt = "".join(f"\n- `{i}`: {r}" for i, r in skipped[:50]) or " none"
    if len(skipped) > 50:
        skipped_txt += f"\n- ... and {len(skipped) - 50} more"
    made_by = ""
    if isinstance(recipe, dict):
        stages = " -> ".join(str(st.get("uses")) for st in recipe.get("stages") or [] if isinstance(st, dict))
        inp = recipe.get("input") or {}
        made_by = (f", made by recipe `{recipe.get('name')}` (input kind `{inp.get('kind')}`"
                   f"{', stages ' + stages if stages else ''})")
    facts = [("rows", stats["rows"]), ("hours of audio", f"{stats['hours']:.3f}"), ("speakers", stats["speakers"]),
             ("sources", srcs),
             ("audio", f"FLAC, {f'{sampling_rate} Hz' if sampling_rate else 'source rate'}, mono, one segment per row")]
    columns = [(f"`{f.name}`", f"`{f.type}`") for f in schema] + [("`audio`", f"`Audio({sampling_rate})`")]
    blocks = [
        f"Exported by SLM Factory (`slmfactory export --to hf`) from `{manifest_dir}`{made_by}.",
        card.table(facts),
        '## Load it\n```python\nfrom datasets import load_from_disk\nds = load_from_disk("PATH")\n'
        'ds[0]["audio"]  # decoded segment\n```',
        "## Columns\n" + card.table(columns, ("column", "type")),
        "`meta` is a JSON object of corpus-specific fields. Time columns (`start`, `duration`) refer to "
        "`audio_path`,\nthe source file the segment was cut from.",
        f"## Licence\nThe audio and text keep the licences of their source corpora ({srcs}); check them before "
        "redistribution.",
        f"## Rows left out at export (audio no longer decodable):{skipped_txt}",
    ]
    return card.render(FRONT_MATTER, "Dataset card", blocks)
