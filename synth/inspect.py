"""``slmfactory inspect`` view of synthesized rows: tasks, voices, turns with audio, two sample chats.

Why: before training on synthetic data you want to see what a row looks like and whether the voices
and tasks are spread the way the recipe intended.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa
from rich.table import Table


def describe(table: pa.Table, console: Any) -> None:
    cols = table.column_names
    msgs = table.column("messages").to_pylist()
    tasks = Counter(table.column("task").to_pylist()) if "task" in cols else Counter()
    voices = Counter(v for v in table.column("voice").to_pylist() if v) if "voice" in cols else Counter()
    turns = spoken = 0
    parsed = []
    for m in msgs:
        try:
            items = json.loads(m) if m else []
        except (TypeError, ValueError):
            items = []
        parsed.append(items)
        turns += len(items)
        spoken += sum(1 for x in items if x.get("audio"))
    t = Table(title="synthesized instructions", header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("rows", str(table.num_rows))
    t.add_row("turns (with audio)", f"{turns} ({spoken})")
    for k, v in sorted(tasks.items(), key=lambda kv: str(kv[0])):
        t.add_row(f"task {k}", str(v))
    t.add_row("distinct voices", str(len(voices)))
    for k, v in voices.most_common(5):
        t.add_row(f"  voice {k}", str(v))
    console.print(t)
    for items in parsed[:2]:
        for x in items:
            audio = " [audio]" if x.get("audio") else ""
            console.print(f"  {x.get('role')}: {x.get('text') or ''}{audio}", markup=False, highlight=False)
        console.print("")
