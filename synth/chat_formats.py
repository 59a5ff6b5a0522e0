"""Trainer-ready chat exports of a synthesis run: Hugging Face chat and ShareGPT / LLaMA-Factory.

Why a second layout beside ``OUT/hf``: trainers read one shape each. TRL, torchtune and ``transformers``
chat templates want ``messages: [{role, content: [{type: "text", text} | {type: "audio", audio}]}]`` with
strictly alternating user/assistant turns; LLaMA-Factory wants ShareGPT ``conversations`` whose text carries one
``<audio>`` placeholder per clip, in order, plus an ``audios`` list of files. Our synthesis rows are
``{role, text, audio}`` turns, where a spoken turn keeps the text it was spoken from (the tts gate keys of the
``gate`` column name those turns) and the spoken-QA recipe asks with two user turns in a row (the recording,
then the question). Here:

- consecutive turns of one role are merged into one message (their parts in order);
- a spoken user turn becomes its audio only (its text is the transcript the model must not see); a spoken
  assistant turn keeps its text and its audio (the text target, and the speech for speech-out training);
- every clip is cut, resampled with soxr to ONE ``sample_rate`` and stored as FLAC (embedded for ``hf-chat``,
  files under ``audios/`` for ``sharegpt``);
- a row that cannot become a valid conversation (it starts with the assistant, ends with the user, or, for
  LLaMA-Factory, has an assistant turn that is audio only: it trains on text targets, so a spoken answer keeps
  its text there and drops its audio) is left out and listed with the reason.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..manifests import card
from ..manifests.clips import flac_clip
from ..manifests.run_manifest import manifest_files
from ..manifests.schema import TARGET_SAMPLE_RATE

FORMATS = ("hf-chat", "sharegpt")
PLACEHOLDER = "<audio>"
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def conversation(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's turns as ``[{role, parts: [("audio", (path, start, duration)) | ("text", str)]}]``: spoken user
    turns reduced to their audio, consecutive turns of one role merged. Raises ``ValueError`` naming what is wrong."""
    msgs = json.loads(row.get("messages") or "[]")
    if not msgs and row.get("audio_path"):
        msgs = [{"role": "user", "text": row.get("text"), "audio": row["audio_path"]}]
    try:
        spoken = {int(k) for k in (json.loads(row.get("gate") or "{}").get("tts") or {})}
    except (ValueError, AttributeError):
        spoken = set()
    turns: list[dict[str, Any]] = []
    for j, m in enumerate(msgs):
        parts: list[tuple[str, Any]] = []
        audio = m.get("audio")
        if audio:
            seg = audio == row.get("audio_path")
            parts.append(("audio", (audio, row.get("start") if seg else None, row.get("duration") if seg else None)))
        if m.get("text") and not (audio and j in spoken and m.get("role") != "assistant"):
            parts.insert(len(parts) if m.get("role") != "assistant" else 0, ("text", str(m["text"])))
        if not parts:
            continue
        if turns and turns[-1]["role"] == m.get("role"):
            turns[-1]["parts"] += parts
        else:
            turns.append({"role": m.get("role"), "parts": parts})
    roles = [t["role"] for t in turns if t["role"] != "system"]
    if not roles or roles[0] != "user" or roles[-1] != "assistant":
        raise ValueError(f"turns {roles}: a conversation must start with the user and end with the assistant")
    if any(r not in ("user", "assistant") for r in roles) or any(a == b for a, b in zip(roles, roles[1:])):
        raise ValueError(f"turns {roles}: roles must alternate user/assistant")
    return turns


def export_chat(run_dir: str | os.PathLike, fmt: str, dest: str | os.PathLike,
                sample_rate: int = TARGET_SAMPLE_RATE) -> dict[str, Any]:
    """Write ``dest`` in ``fmt`` (``hf-chat`` or ``sharegpt``) from a synthesis run's manifest; returns a summary
    (``rows`` written, ``skipped``: [(id, reason)], ``path``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown chat format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(dest)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty; choose a new -o folder or delete it")
    files = manifest_files(run_dir)
    skipped: list[tuple[str, str]] = []
    writer = _HfChat(out, sample_rate) if fmt == "hf-chat" else _ShareGpt(out, sample_rate)
    for k, f in enumerate(files):
        done = []
        for row in pq.read_table(f).to_pylist():
            try:
                done.append(writer.example(row, conversation(row)))
            except Exception as e:  # noqa: BLE001 - one bad row (unreadable clip, odd turns) never sinks the export
                skipped.append((str(row.get("id")), f"{type(e).__name__}: {e}"))
        writer.flush(k, done)
    if not skipped or len(skipped) < sum(pq.ParquetFile(f).metadata.num_rows for f in files):
        n = writer.finish(Path(run_dir), skipped)
    else:
        raise ValueError(f"{run_dir}: no row became a conversation (first: {skipped[0][0]}: {skipped[0][1]}); "
                         f"--format needs a synthesis run, whose rows have `messages` (slmfactory synth --help)")
    return {"path": str(out), "format": fmt, "rows": n, "sample_rate": sample_rate, "skipped": skipped}


class _HfChat:
    """``data/train-XXXXX.parquet`` + card: ``messages[].content[]`` items with an embedded ``Audio`` clip."""

    def __init__(self, out: Path, sr: int):
        import datasets

        datasets.disable_progress_bars()
        self.out, self.sr, self.n = out, sr, 0
        (out / "data").mkdir(parents=True, exist_ok=True)
        v = datasets.Value("string")
        part = {"type": v, "text": v, "audio": datasets.Audio(sampling_rate=sr)}
        self.features = datasets.Features({"id": v, "task": v, "messages": datasets.List(
            {"role": v, "content": datasets.List(part)})})

    def example(self, row: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any]:
        msgs, clips = [], 0
        for t in turns:
            content = []
            for kind, val in t["parts"]:
                if kind == "text":
                    content.append({"type": "text", "text": val, "audio": None})
                else:
                    data = flac_clip(val[0], val[1], val[2], sampling_rate=self.sr, keep_whole_flac=True)
                    content.append({"type": "audio", "text": None,
                                    "audio": {"bytes": data, "path": f"{row['id']}_{clips}.flac"}})
                    clips += 1
            msgs.append({"role": t["role"], "content": content})
        return {"id": str(row["id"]), "task": row.get("task"), "messages": msgs}

    def flush(self, k: int, rows: list[dict[str, Any]]) -> None:
        import datasets

        from ..manifests.export import write_parquet

        if rows:
            write_parquet(datasets.Dataset.from_list(rows, features=self.features),
                          self.out / "data" / f"train-{k:05d}.parquet")
            self.n += len(rows)

    def finish(self, run_dir: Path, skipped: list[tuple[str, str]]) -> int:
        got = card.parquet_config(self.out, "default", "data/*.parquet", features=self.features, default=True)
        blocks = [f"Chat export (`slmfactory export {run_dir} --format hf-chat`): `messages` alternate user and "
                  f"assistant; each `content` item is `{{type: text, text}}` or `{{type: audio, audio}}` (FLAC, "
                  f"{self.sr} Hz, embedded).", *_left_out(skipped),
                  "## Load it\n```python\nfrom datasets import load_dataset\n"
                  'ds = load_dataset("PATH", split="train")\nds[0]["messages"]\n```']
        card.write_hub_card(self.out, "Spoken chat data (SLM Factory)", blocks, [got] if got else [],
                            task_categories=["audio-text-to-text"], tags=["chat", "synthetic"])
        return self.n


class _ShareGpt:
    """``train.json`` (ShareGPT ``conversations`` + ``audios``), ``audios/*.flac`` and LLaMA-Factory's
    ``dataset_info.json`` entry (paths relative to the folder, LLaMA-Factory's ``dataset_dir``)."""

    def __init__(self, out: Path, sr: int):
        self.out, self.sr, self.rows = out, sr, []
        (out / "audios").mkdir(parents=True, exist_ok=True)

    def example(self, row: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any]:
        conv, audios = [], []
        for t in turns:
            parts = t["parts"]
            if t["role"] == "assistant":  # LLaMA-Factory trains on text targets: a spoken answer keeps its text
                parts = [p for p in parts if p[0] == "text"]
                if not parts:
                    raise ValueError("the assistant answers with audio only; LLaMA-Factory takes audio only as input")
            text = []
            for kind, val in parts:
                if kind == "text":
                    text.append(val.replace(PLACEHOLDER, "<audio >"))  # a literal placeholder would miscount
                    continue
                name = f"audios/{_safe(row['id'])}_{len(audios)}.flac"
                (self.out / name).write_bytes(flac_clip(val[0], val[1], val[2], sampling_rate=self.sr,
                                                        keep_whole_flac=True))
                audios.append(name)
                text.append(PLACEHOLDER)
            conv.append({"from": SHAREGPT_ROLES[t["role"]], "value": "\n".join(text)})
        return {"id": str(row["id"]), "task": row.get("task"), "conversations": conv, "audios": audios}

    def flush(self, k: int, rows: list[dict[str, Any]]) -> None:
        self.rows += rows

    def finish(self, run_dir: Path, skipped: list[tuple[str, str]]) -> int:
        _write_json(self.out / "train.json", self.rows)
        name = f"slmfactory_{_safe(run_dir.resolve().name)}"
        _write_json(self.out / "dataset_info.json", {name: {
            "file_name": "train.json", "formatting": "sharegpt",
            "columns": {"messages": "conversations", "audios": "audios"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                     "system_tag": "system"}}})
        (self.out / "README.md").write_text("\n\n".join([
            f"# Spoken chat data for LLaMA-Factory (ShareGPT, {self.sr} Hz FLAC)",
            f"From `{run_dir}`. `train.json`: `conversations` (`from` human/gpt, alternating) whose `value` holds "
            f"one `{PLACEHOLDER}` per clip, in order, and `audios` (paths relative to this folder). Train with "
            f"`dataset_dir: {self.out}` and `dataset: {name}` (the entry is in `dataset_info.json`).",
            *_left_out(skipped)]) + "\n", encoding="utf-8")
        return len(self.rows)


def _left_out(skipped: list[tuple[str, str]]) -> list[str]:
    if not skipped:
        return []
    more = f"\n- ... and {len(skipped) - 50} more" if len(skipped) > 50 else ""
    return ["## Left out\n" + "\n".join(f"- `{i}`: {r}" for i, r in skipped[:50]) + more]


def _safe(text: Any) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(text))[:100]


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
