"""The one dataset-card writer: a Hugging Face ``README.md`` (``huggingface_hub.DatasetCard``) with ``configs:``.

Why one writer: every folder we publish (a run folder, ``export --to hf``, a synthesis run's ``OUT/hf``, the chat
exports) must load with ``datasets.load_dataset(folder)`` and look alike on the Hub. The YAML header is built
with ``DatasetCardData`` (license, language, task categories, size category, tags) plus ``configs:`` naming the
Parquet files of each config, so folders beside the data (``_inputs/``, ``_state/``, ``hf/``) are never mixed in,
and ``dataset_info:`` with the features (an ``Audio`` column decodes) and row counts.

The run folder's card (:func:`write_run_card`, called by the runner when a run ends) has one config per kind
of row: ``manifest`` (default; ``OUT/manifest/*.parquet``), ``errors`` (``OUT/errors/*.parquet``, when a row
was rejected) and ``packed`` (``OUT/packed/*.parquet``, when the recipe packs), so ``load_dataset(OUT)`` gives
the manifest and ``load_dataset(OUT, "errors")`` the rejected rows; ``_inputs/`` and ``_state/`` never mix in.

Why a ``description`` with a content digest in every config: ``datasets`` keys its cache for a folder with a
README ``configs:`` section by the folder's name and the YAML alone, not by the files, so two runs both called
``out`` (or one folder re-run) would be served from the first one's cache. The digest (names, sizes and
Parquet footers of the files) changes whenever the data does.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .models import BUNDLED

# license strings of manifests/models.py (free text) -> Hub license ids
HUB_LICENSES = {"mit": "mit", "apache-2.0": "apache-2.0", "cc0-1.0": "cc0-1.0", "cc-by-4.0": "cc-by-4.0",
                "cc-by-sa-4.0": "cc-by-sa-4.0", "cc-by-nc-4.0": "cc-by-nc-4.0", "public domain": "cc0-1.0"}


def render(front_matter: list[str], title: str, blocks: list[str]) -> str:
    """``---`` + the YAML lines + ``---``, ``# title``, then the blocks, one blank line between them."""
    return "\n".join(["---", *front_matter, "---", f"# {title}", "", *"\n\n".join(blocks).split("\n")]) + "\n"


def table(rows: Iterable[tuple[Any, Any]], head: tuple[str, str] = ("", ""),
          empty: tuple[Any, Any] | None = None) -> str:
    """A Markdown table: the ``head`` row (blank titles allowed), then one row per pair (``empty`` if none)."""
    body = [f"| {a} | {b} |" for a, b in rows] or ([f"| {empty[0]} | {empty[1]} |"] if empty else [])
    return "\n".join(["|" + "|".join(f" {h} " if h else " " for h in head) + "|", "|---" * len(head) + "|", *body])


def write(dest: str | Path, text: str) -> Path:
    """Write the card as ``dest/README.md`` (where the Hub and ``datasets`` look for it)."""
    path = Path(dest) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def hub_license(text: str | None) -> list[str]:
    """Hub license ids found in a free-text license (``"voice data CC0-1.0, package MIT"`` -> both)."""
    low = (text or "").lower()
    return [hub for key, hub in HUB_LICENSES.items() if key in low]


def licenses(model_licenses: Iterable[str], corpus_license: str | None = None) -> list[str]:
    """The card's ``license``: the corpus license first (it governs the audio and text; ``other`` when the
    pipeline does not know it, so nobody reads a model's license as the data's), then the models' licenses."""
    found = hub_license(corpus_license) or [str(corpus_license).strip().lower() if corpus_license else "other"]
    for text in model_licenses:
        found += [lic for lic in hub_license(text) if lic not in found]
    return found


def parquet_config(root: Path, name: str, pattern: str, features: Any = None, default: bool = False,
                   split: str = "train") -> tuple[dict[str, Any], Any] | None:
    """``(configs entry, DatasetInfo)`` for the Parquet files matching ``pattern`` under ``root`` that hold rows,
    or None when none does.

    Why not always the glob: ``datasets`` fails on a Parquet file with no rows ("BatchSize must be greater than
    0"), and the runner writes an empty ``errors`` shard for every shard without errors; so when some matched
    file is empty the config lists the non-empty files by name. The features are the shards' unified schema:
    a shard that lacks a column another one has then loads with nulls there instead of failing.
    """
    import datasets

    matched = sorted(glob.glob(str(Path(root) / pattern)))
    files = [f for f in matched if pq.ParquetFile(f).metadata.num_rows > 0]
    if not files:
        return None
    if features is None:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
        features = datasets.Features.from_arrow_schema(schema)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    size = sum(os.path.getsize(f) for f in files)
    paths = pattern if len(files) == len(matched) else [os.path.relpath(f, root) for f in files]
    entry: dict[str, Any] = {"config_name": name, "data_files": [{"split": split, "path": paths}],
                             "description": f"{rows} rows; content digest {digest(files)}"}
    if default:
        entry["default"] = True
    info = datasets.DatasetInfo(features=features, config_name=name, dataset_size=size, download_size=size,
                                splits=datasets.SplitDict({split: datasets.SplitInfo(split, size, rows)}))
    return entry, info


def digest(files: list[str]) -> str:
    """A cheap fingerprint of Parquet files: names, sizes and footers (the footer holds every column chunk's
    offsets and statistics, so different content gives a different footer)."""
    h = hashlib.sha1()
    for f in files:
        n = os.path.getsize(f)
        h.update(f"{os.path.basename(f)}:{n}".encode())
        with open(f, "rb") as fh:
            fh.seek(max(0, n - 65536))
            h.update(fh.read())
    return h.hexdigest()[:16]


def write_hub_card(dest: str | Path, title: str, blocks: list[str], configs: list[tuple[dict, Any]],
                   license: list[str] | str = "other", language: list[str] | None = None,
                   task_categories: list[str] | None = None, tags: list[str] | None = None,
                   pretty_name: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """``dest/README.md`` via ``huggingface_hub.DatasetCard``: the YAML header (configs + dataset_info) and the
    blocks under ``# title``. ``configs`` are :func:`parquet_config` results."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

    rows = sum(info.splits.total_num_examples for _, info in configs)
    data = DatasetCardData(license=license, language=language or ["en"], pretty_name=pretty_name,
                           task_categories=task_categories or ["automatic-speech-recognition"],
                           size_categories=[size_category(rows)], tags=["speech", "audio", "slmfactory", *(tags or [])],
                           configs=[c for c, _ in configs], **(extra or {}))
    DatasetInfosDict({c["config_name"]: info for c, info in configs}).to_dataset_card_data(data)
    body = "\n".join([f"# {title}", "", *"\n\n".join(blocks).split("\n")])
    path = Path(dest) / "README.md"
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n").save(path)
    return path


CONFIGS = (("manifest", "manifest/*.parquet"), ("errors", "errors/*.parquet"), ("packed", "packed/*.parquet"))


def write_run_card(out_dir: Path, run_info: dict | None = None) -> Path:
    """Write ``OUT/README.md`` for a finished run (``run_info``: the ``run.json`` dict, read from OUT if None)."""
    out = Path(out_dir)
    if run_info is None:
        try:
            run_info = json.loads((out / "run.json").read_text())
        except (OSError, ValueError):
            run_info = {}
    configs = []
    for name, pattern in CONFIGS:
        got = parquet_config(out, name, pattern, default=not configs and name == "manifest")
        if got is not None:
            configs.append(got)
    if configs and not any(c.get("default") for c, _ in configs):
        configs[0][0]["default"] = True  # every row was rejected: the errors are what there is to read
    recipe = run_info.get("recipe") or {}
    used = models_used(recipe)
    corpus_license = (recipe.get("input") or {}).get("license") or run_info.get("license")
    counts = run_info.get("counts") or {}
    name = recipe.get("name") or "run"
    blocks = [
        f"Output of the SLM Factory recipe `{name}` (input kind `{(recipe.get('input') or {}).get('kind', '?')}`"
        f", stages {' -> '.join(_uses(s) for s in recipe.get('stages') or []) or 'none'}).",
        table([("input items", counts.get("inputs", "?")), ("good rows (manifest)", counts.get("rows", "?")),
               ("rejected (errors)", counts.get("errors", "?")), ("hours of audio", counts.get("hours", "?"))]),
        "## Load it\n```python\nfrom datasets import load_dataset\n"
        'rows = load_dataset("OUT", split="train")              # the manifest (default config)\n'
        + ('errors = load_dataset("OUT", "errors", split="train")  # rejected inputs: stage and reason\n'
           if any(c["config_name"] == "errors" for c, _ in configs) else "")
        + ('packed = load_dataset("OUT", "packed", split="train")  # training blocks\n'
           if any(c["config_name"] == "packed" for c, _ in configs) else "")
        + "```\n`audio_path`, `start` and `duration` point into the source files (audio is not embedded here; "
          "`slmfactory export OUT --to hf` embeds the clips).",
        "## Models used\n" + ("\n".join(f"- {b.card_line()}" for b in used) or "- none bundled (see the recipe)"),
        "## Licence\nThe audio and text keep the licences of their source corpus"
        + (f" ({corpus_license})" if corpus_license else " (unknown to the pipeline: check it before redistribution)")
        + "; the `license` field lists it and the licences of the models used.",
    ]
    if counts.get("errors_by_stage"):
        blocks.append("## Rejected, per stage\n" + table(counts["errors_by_stage"].items(), ("stage", "rows")))
    return write_hub_card(out, f"{name} (SLM Factory run)", blocks, configs,
                          license=licenses([b.license for b in used], corpus_license),
                          language=[str(run_info.get("language") or "en")], tags=[name],
                          pretty_name=f"SLM Factory {name}")


def models_used(recipe: dict[str, Any]) -> list[Any]:
    """The bundled models (``manifests/models.py``) a recipe ran with: defaults that name no model path."""
    keys: list[str] = []
    for st in [*(recipe.get("prepare") or []), *(recipe.get("stages") or []), *(recipe.get("finalize") or [])]:
        uses, p = _uses(st), (st.get("params") or {}) if isinstance(st, dict) else {}
        if uses == "dnsmos" and not p.get("model_dir"):
            keys.append("dnsmos")
        if uses == "asr" and p.get("backend", "whisper") == "whisper" and not (p.get("model") or p.get("model_path")):
            keys.append("whisper-tiny.en")
        if uses == "tokenize" and p.get("tokenizer") == "whisper-encoder" and not p.get("checkpoint"):
            keys.append("whisper-tiny.en")  # its encoder made the units
        if uses == "tts":
            if p.get("backend", "piper") == "piper" and not (p.get("backend_params") or {}).get("model_path"):
                keys.append("piper-joe-medium")
            if "wer" in (p.get("gates") or {"wer": {}}):
                keys.append("whisper-tiny.en")
        llm = p.get("llm")
        if isinstance(llm, dict) and llm.get("backend", "transformers") == "transformers" and not (
                llm.get("model_path") or llm.get("model")):
            keys.append("smollm2-135m-instruct")
    return [BUNDLED[k] for k in dict.fromkeys(keys)]


def _uses(step: Any) -> str:
    """A recipe step is ``{uses: name, params: ...}`` or just ``name``."""
    return str(step.get("uses") or "") if isinstance(step, dict) else str(step)
