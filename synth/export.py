"""Hugging Face export of a synthesis run: chat ``messages`` + embedded ``audios`` + a dataset card.

Layout (loads with ``datasets.load_dataset(OUT/hf, split="train")``)::

    OUT/hf/README.md                      dataset card: recipe, models, voices, gate thresholds, counts
    OUT/hf/data/train-XXXXX.parquet       one file per manifest shard (bounded memory)

Why ``audios: List(Audio())`` with ``messages[i].audio`` an index into it: one row can hold several
clips (the recording, a spoken question, a spoken answer) and the audio bytes travel inside the Parquet
files, so the dataset is self-contained and playable anywhere.
"""
from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import soundfile as sf

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


def audio_bytes(path: str, start: float | None = None, duration: float | None = None) -> bytes:
    """The clip as FLAC bytes: whole FLAC files as they are; slices (or other formats) re-encoded at 16 kHz."""
    whole = not start and duration is None
    if path.lower().endswith(".flac") and (whole or not start):
        info = sf.info(path)
        if whole or abs(info.frames / info.samplerate - float(duration)) < 0.01:
            return Path(path).read_bytes()
    from ..manifests.audio import load_audio

    wav, _ = load_audio(path, start or 0.0, duration)
    buf = io.BytesIO()
    sf.write(buf, wav, TARGET_SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


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
                data = audio_bytes(a, row.get("start") if seg else None, row.get("duration") if seg else None)
                index[a] = len(clips)
                clips.append({"bytes": data, "path": f"{row['id']}_{len(clips)}.flac"})
            k = index[a]
        out_msgs.append({"role": m.get("role"), "text": m.get("text"), "audio": k})
    ex = {c: row.get(c) for c in KEEP}
    ex.update(messages=out_msgs, audios=clips, gate=row.get("gate"))
    return ex


def export_hf_chat(out_dir: str | os.PathLike, dest: str | os.PathLike | None = None,
                   card: dict[str, Any] | None = None) -> dict[str, Any]:
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
        examples = []
        for row in pq.read_table(f).to_pylist():
            try:
                examples.append(row_example(row))
            except Exception as e:  # noqa: BLE001 - one unreadable clip must not sink the export
                skipped.append((row.get("id"), f"{type(e).__name__}: {e}"))
        if examples:
            ds = datasets.Dataset.from_list(examples, features=features())
            tmp = dest / "data" / f".train-{k:05d}.parquet.tmp"
            ds.to_parquet(str(tmp))
            os.replace(tmp, dest / "data" / f"train-{k:05d}.parquet")
            n += len(examples)
    stats = run_counts(out)
    stats["exported"] = n
    stats["skipped"] = skipped
    (dest / "README.md").write_text(dataset_card(stats, card or {}), encoding="utf-8")
    return stats


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


def dataset_card(stats: dict[str, Any], info: dict[str, Any]) -> str:
    """README.md: YAML front matter (``data/train-*.parquet`` is found by the default layout) and the facts
    a user needs to trust the data."""
    def table(d: dict[str, Any], a: str, b: str) -> str:
        rows = "\n".join(f"| {k} | {v} |" for k, v in d.items()) or "| (none) | 0 |"
        return f"| {a} | {b} |\n|---|---|\n{rows}"

    lines = [
        "---",  # no `configs:` here: with one, datasets 5.x caches every folder named `hf` under one key
        "tags: [speech, instruction-tuning, synthetic, slmfactory]",
        "---",
        f"# {info.get('recipe', 'synthesized')} (SLM Factory)",
        "",
        "Synthetic spoken instruction data. Each row has chat `messages` (`role`, `text`, `audio` = index into "
        "`audios`, or null) and the clips in `audios` (FLAC, embedded).",
        "",
        "## Recipe",
        f"- recipe: `{info.get('recipe', '?')}` ({info.get('recipe_path', '')})",
        f"- seed: {info.get('seed', 0)}",
        f"- LLM: {info.get('llm', 'none')}",
        f"- TTS: {info.get('tts', 'none')}",
        "",
        "## Quality gates (thresholds)",
        "```json",
        json.dumps(info.get("gates", {}), indent=2, sort_keys=True, default=str),
        "```",
        "",
        f"## Counts\n- rows: {stats.get('rows', 0)} (exported {stats.get('exported', 0)}), "
        f"hours of row audio: {stats.get('hours', 0)}, rejected: {stats.get('errors', 0)}",
        "",
        table(stats.get("tasks", {}), "task", "rows"),
        "",
        "### Rejected, per gate",
        table(stats.get("errors_by_gate", {}), "gate", "rows"),
        "",
        "### Rejected, per stage",
        table(stats.get("errors_by_stage", {}), "stage", "rows"),
        "",
        "## Voices",
        table(stats.get("voices", {}), "voice", "rows"),
        "",
    ]
    if stats.get("skipped"):
        lines += ["## Left out of the export (unreadable audio)", *[f"- {i}: {r}" for i, r in stats["skipped"]], ""]
    return "\n".join(lines)
