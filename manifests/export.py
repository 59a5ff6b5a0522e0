"""Export a manifest to a Hugging Face dataset folder (Parquet + card, decodable ``Audio``) or to Lhotse.

Why cut the audio: a manifest row is a segment (``start``/``duration`` into a long file); a dataset user
expects each example's audio to be exactly that segment, so it is decoded, cut, resampled and stored as
FLAC bytes inside the Parquet files (``datasets`` decodes FLAC with torchcodec). Text-only rows get
``audio`` None. Layout, the same as every folder we publish (loads with ``datasets.load_dataset(OUT)`` and
pushes to the Hub as it is)::

    OUT/README.md                   card (huggingface_hub.DatasetCard): configs, features, license, counts
    OUT/data/train-XXXXX.parquet    one file per manifest shard (bounded memory)

``slmfactory export PATH --to hf|lhotse|lhotse-shar -o OUT`` calls :func:`export`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import card
from .clips import examples, flac_clip
from .run_manifest import iter_rows, manifest_files
from .schema import AUDIO_COLUMN, ERROR_COLUMN, ERROR_STAGE_COLUMN, TARGET_SAMPLE_RATE

TARGETS = ("hf", "lhotse", "lhotse-shar")


class ExportSummary(dict):
    """The export's facts (a dict) that prints as one line for the CLI: where, how many, how many left out."""

    def __str__(self) -> str:
        where = self.get("path") or os.path.dirname(str(self.get("supervisions", "")))
        n = self.get("num_rows", self.get("num_supervisions", 0))
        left = len(self.get("skipped") or [])
        return f"{where} ({n} rows" + (f", {left} left out: listed in the summary/README.md)" if left else ")")


def export(path: str | os.PathLike, to: str, out: str | os.PathLike, **opts: Any) -> dict[str, Any]:
    """Export the manifest at ``path`` to ``out`` as ``to`` = ``hf``, ``lhotse`` or ``lhotse-shar``."""
    if to not in TARGETS:
        raise ValueError(f"unknown export target {to!r}; use one of {', '.join(TARGETS)}")
    files = manifest_files(path)
    if to.startswith("lhotse"):
        from .lhotse_export import export_lhotse

        return ExportSummary(export_lhotse(iter_rows(files), str(out), prefix=opts.get("prefix", "slmfactory"),
                                           shar=to == "lhotse-shar", sampling_rate=opts.get("sampling_rate")))
    return ExportSummary(export_hf(files, str(out), **opts))


def _kept_schema(files: list[str]) -> pa.Schema:
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    drop = {AUDIO_COLUMN, ERROR_COLUMN, ERROR_STAGE_COLUMN}
    return pa.schema([f for f in schema if not f.name.startswith("_") and f.name not in drop])


def export_hf(files: list[str], out: str, sampling_rate: int | None = TARGET_SAMPLE_RATE, **_: Any) -> dict[str, Any]:
    """Write ``out/data/train-XXXXX.parquet`` (an ``audio`` column of FLAC segments) and ``out/README.md``.

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
    (out_p / "data").mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()

    def example(row: dict[str, Any]) -> dict[str, Any]:
        path = row.get("audio_path")
        audio = {"bytes": flac_clip(path, row.get("start"), row.get("duration"), sampling_rate),
                 "path": f"{row['id']}.flac"} if path else None
        return {**{k: row.get(k) for k in schema.names}, AUDIO_COLUMN: audio}

    n = 0
    for k, f in enumerate(files):  # one Parquet file per shard: memory bounded by a shard's clips
        rows = list(examples(iter_rows([f]), example, skipped, _reason))
        if rows:
            write_parquet(datasets.Dataset.from_list(rows, features=features), out_p / "data" / f"train-{k:05d}.parquet")
            n += len(rows)
    stats = _stats(files, {i for i, _ in skipped})
    dataset_card(out_p, stats, features, sampling_rate, skipped, Path(files[0]).parent)
    return {"path": out, "num_rows": n, "skipped": skipped, **stats}


def write_parquet(ds: Any, dest: Path) -> None:
    """``ds.to_parquet`` through a temporary name: the features (``Audio``) travel in the file's metadata."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    ds.to_parquet(str(tmp))
    os.replace(tmp, dest)


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


def dataset_card(out: Path, stats: dict[str, Any], features: Any, sampling_rate: int | None,
                 skipped: list[tuple[str, str]], manifest_dir: Path) -> Path:
    """The card: YAML header (configs, features, license), what is inside, how it was made, how to load it."""
    try:
        run = json.loads((manifest_dir.parent / "run.json").read_text())
    except (OSError, ValueError):
        run = {}
    recipe = run.get("recipe") if isinstance(run.get("recipe"), dict) else {}
    srcs = ", ".join(f"{k} ({v})" for k, v in sorted(stats["sources"].items()))
    skipped_txt = "".join(f"\n- `{i}`: {r}" for i, r in skipped[:50]) or " none"
    if len(skipped) > 50:
        skipped_txt += f"\n- ... and {len(skipped) - 50} more"
    made_by = ""
    if recipe:
        stages = " -> ".join(str(st.get("uses")) for st in recipe.get("stages") or [] if isinstance(st, dict))
        made_by = (f", made by recipe `{recipe.get('name')}` (input kind `{(recipe.get('input') or {}).get('kind')}`"
                   f"{', stages ' + stages if stages else ''})")
    used = card.models_used(recipe)
    facts = [("rows", stats["rows"]), ("hours of audio", f"{stats['hours']:.3f}"), ("speakers", stats["speakers"]),
             ("sources", srcs),
             ("audio", f"FLAC, {f'{sampling_rate} Hz' if sampling_rate else 'source rate'}, mono, one segment per row")]
    columns = [(f"`{name}`", f"`{feat}`") for name, feat in features.items()]
    blocks = [
        f"Exported by SLM Factory (`slmfactory export --to hf`) from `{manifest_dir}`{made_by}.",
        card.table(facts),
        '## Load it\n```python\nfrom datasets import load_dataset\nds = load_dataset("PATH", split="train")\n'
        'ds[0]["audio"]  # decoded segment\n```',
        "## Columns\n" + card.table(columns, ("column", "type")),
        "`meta` is a JSON object of corpus-specific fields. Time columns (`start`, `duration`) refer to "
        "`audio_path`,\nthe source file the segment was cut from.",
        "## Models used\n" + ("\n".join(f"- {b.card_line()}" for b in used) or "- none bundled"),
        f"## Licence\nThe audio and text keep the licences of their source corpora ({srcs}); check them before "
        "redistribution.",
        f"## Rows left out at export (audio no longer decodable):{skipped_txt}",
    ]
    got = card.parquet_config(out, "default", "data/*.parquet", features=features, default=True)
    corpus_license = (recipe.get("input") or {}).get("license")
    return card.write_hub_card(out, "Dataset card", blocks, [got] if got else [], pretty_name="SLM Factory export",
                               license=card.licenses([b.license for b in used], corpus_license))
