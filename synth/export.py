"""Hugging Face export of a synthesis run: chat ``messages`` + embedded ``audios`` + a dataset card.

Layout (loads with ``datasets.load_dataset(OUT/hf, split="train")``)::

    OUT/hf/README.md                      card (huggingface_hub.DatasetCard): configs, features, license,
                                          recipe, models, voices, gate thresholds and counts per gate
    OUT/hf/data/train-XXXXX.parquet       one file per manifest shard (bounded memory)

The same Parquet + card layout as ``slmfactory export --to hf`` and the run folder itself. For trainers,
``slmfactory export OUT --format hf-chat|sharegpt`` (:mod:`slmfactory.synth.chat_formats`) rewrites these rows
as alternating ``{role, content}`` chat at one sample rate.

Why ``audios: List(Audio())`` with ``messages[i].audio`` an index into it: one row can hold several
clips (the recording, a spoken question, a spoken answer) and the audio bytes travel inside the Parquet
files, so the dataset is self-contained and playable anywhere. Clips are cut and encoded, unreadable rows
listed and the card laid out by the same code as ``slmfactory export`` (:mod:`slmfactory.manifests.clips`,
:mod:`slmfactory.manifests.card`); only the chat layout and the synthesis counts live here.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..manifests import card
from ..manifests.clips import examples, flac_clip
from ..manifests.models import BUNDLED
from ..manifests.schema import TARGET_SAMPLE_RATE

GATE_RX = re.compile(r"\bgate (\w+):")
KEEP = ["id", "task", "source", "speaker", "voice", "text", "duration"]


def features():
    import datasets

    return datasets.Features({
        "id": datasets.Value("string"), "task": datasets.Value("string"), "source": datasets.Value("string"),
        "speaker": datasets.Value("string"), "voice": datasets.Value("string"), "text": datasets.Value("string"),
        "duration": datasets.Value("float64"),
        "messages": datasets.List({"role": datasets.Value("string"), "text": datasets.Value("string"),
                                   "audio": datasets.Value("int32")}),
        "audios": datasets.List(datasets.Audio()),
        "gate": datasets.Value("string"),
    })


def row_example(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row -> an example: messages with audio indices, clips embedded once each."""
    msgs = json.loads(row.get("messages") or "[]")
    if not msgs and row.get("audio_path"):
        msgs = [{"role": "user", "text": row.get("text"), "audio": row["audio_path"]}]
    clips: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    out_msgs = []
    for m in msgs:
        a = m.get("audio")
        k = None
        if a:
            if a not in index:
                seg = a == row.get("audio_path")
                data = flac_clip(a, row.get("start") if seg else None, row.get("duration") if seg else None,
                                 sampling_rate=int(row.get("tts_sample_rate") or TARGET_SAMPLE_RATE),
                                 keep_whole_flac=True)
                index[a] = len(clips)
                clips.append({"bytes": data, "path": f"{row['id']}_{len(clips)}.flac"})
            k = index[a]
        out_msgs.append({"role": m.get("role"), "text": m.get("text"), "audio": k})
    ex = {c: row.get(c) for c in KEEP}
    ex.update(messages=out_msgs, audios=clips, gate=row.get("gate"))
    return ex


def export_hf_chat(out_dir: str | os.PathLike, dest: str | os.PathLike | None = None,
                   info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``dest`` (default ``OUT/hf``) from ``OUT/manifest``; rows with unreadable audio are listed, not lost."""
    import datasets

    datasets.disable_progress_bars()
    out = Path(out_dir)
    dest = Path(dest) if dest else out / "hf"
    (dest / "data").mkdir(parents=True, exist_ok=True)
    for old in (dest / "data").glob("train-*.parquet"):
        old.unlink()
    files = sorted((out / "manifest").glob("*.parquet"))
    n, skipped = 0, []
    for k, f in enumerate(files):
        rows = list(examples(pq.read_table(f).to_pylist(), row_example, skipped, _reason))
        if rows:
            ds = datasets.Dataset.from_list(rows, features=features())
            tmp = dest / "data" / f".train-{k:05d}.parquet.tmp"
            ds.to_parquet(str(tmp))
            os.replace(tmp, dest / "data" / f"train-{k:05d}.parquet")
            n += len(rows)
    stats = run_counts(out)
    stats["exported"] = n
    stats["skipped"] = skipped
    info = info or {}
    got = card.parquet_config(dest, "default", "data/*.parquet", features=features(), default=True)
    title, blocks = dataset_card(stats, info)
    card.write_hub_card(dest, title, blocks, [got] if got else [], license=card.licenses(model_licenses(info)),
                        task_categories=["audio-text-to-text", "automatic-speech-recognition", "text-to-speech"],
                        tags=["instruction-tuning", "synthetic", str(info.get("recipe", "synth"))])
    return stats


def model_licenses(info: dict[str, Any]) -> list[str]:
    """Licenses of the bundled models the card info names (the LLM by name, Piper and the Whisper gate by default)."""
    text = f"{info.get('llm', '')} {info.get('tts', '')}"
    used = [b for b in BUNDLED.values() if b.what in text]
    if str(info.get("tts", "")).startswith("piper") and "model_path" not in str(info.get("tts")):
        used.append(BUNDLED["piper-joe-medium"])
    if "wer" in json.dumps(info.get("gates", {})):
        used.append(BUNDLED["whisper-tiny.en"])
    return [b.license for b in used]


def _reason(row: dict[str, Any], e: Exception) -> str:
    return f"{type(e).__name__}: {e}"


def run_counts(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Rows per task, voices, errors per stage and per gate, from OUT/manifest and OUT/errors."""
    out = Path(out_dir)
    tasks: Counter[str] = Counter()
    voices: Counter[str] = Counter()
    seconds = 0.0
    for f in sorted((out / "manifest").glob("*.parquet")):
        cols = [c for c in ("task", "voice", "duration") if c in pq.read_schema(f).names]
        t = pq.read_table(f, columns=cols).to_pydict()
        tasks.update(str(x) for x in t.get("task", []))
        voices.update(str(x) for x in t.get("voice", []) if x)
        seconds += sum(float(x or 0) for x in t.get("duration", []))
    by_stage: Counter[str] = Counter()
    by_gate: Counter[str] = Counter()
    for f in sorted((out / "errors").glob("*.parquet")):
        t = pq.read_table(f, columns=["stage", "reason"]).to_pydict()
        for stage, reason in zip(t["stage"], t["reason"]):
            by_stage[str(stage)] += 1
            m = GATE_RX.search(reason or "")
            by_gate[m.group(1) if m else f"other:{stage}"] += 1
    return {"rows": sum(tasks.values()), "tasks": dict(sorted(tasks.items())), "voices": dict(sorted(voices.items())),
            "hours": round(seconds / 3600, 4), "errors": sum(by_stage.values()),
            "errors_by_stage": dict(sorted(by_stage.items())), "errors_by_gate": dict(sorted(by_gate.items()))}


def dataset_card(stats: dict[str, Any], info: dict[str, Any]) -> tuple[str, list[str]]:
    """The card's title and blocks: the facts a user needs to trust the data (the header is written by
    :func:`slmfactory.manifests.card.write_hub_card`)."""
    def table(d: dict[str, Any], a: str, b: str) -> str:
        return card.table(d.items(), (a, b), empty=("(none)", 0))

    blocks = [
        "Synthetic spoken instruction data. Each row has chat `messages` (`role`, `text`, `audio` = index into "
        "`audios`, or null) and the clips in `audios` (FLAC, embedded).",
        f"## Recipe\n- recipe: `{info.get('recipe', '?')}` ({info.get('recipe_path', '')})\n"
        f"- seed: {info.get('seed', 0)}\n- LLM (wrote the text): {info.get('llm', 'none')}\n"
        f"- TTS: {info.get('tts', 'none')}" + (f"\n\n**{info['llm_note']}**" if info.get("llm_note") else ""),
        "## Quality gates (thresholds)\n```json\n"
        + json.dumps(info.get("gates", {}), indent=2, sort_keys=True, default=str) + "\n```",
        f"## Counts\n- rows: {stats.get('rows', 0)} (exported {stats.get('exported', 0)}), "
        f"hours of row audio: {stats.get('hours', 0)}, rejected: {stats.get('errors', 0)}",
        table(stats.get("tasks", {}), "task", "rows"),
        "### Rejected, per gate\n" + table(stats.get("errors_by_gate", {}), "gate", "rows"),
        "### Rejected, per stage\n" + table(stats.get("errors_by_stage", {}), "stage", "rows"),
        "## Voices\n" + table(stats.get("voices", {}), "voice", "rows"),
    ]
    if stats.get("skipped"):
        blocks.append("\n".join(["## Left out of the export (unreadable audio)",
                                  *[f"- {i}: {r}" for i, r in stats["skipped"]]]))
    blocks.append("## Trainer-ready chat\n`slmfactory export OUT --format hf-chat -o DIR` (TRL / transformers "
                  "`{role, content}`) or `--format sharegpt` (LLaMA-Factory) write these rows with alternating "
                  "turns at one sample rate.")
    return f"{info.get('recipe', 'synthesized')} (SLM Factory)", blocks
