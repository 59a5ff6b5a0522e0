"""``slmfactory inspect`` for interleaved manifests: token counts per format and one decoded example.

Why: a trainer silently learns garbage if markers, offsets or word/unit spans are wrong; looking at one
decoded sequence — text words next to the unit runs spoken for them — catches that at a glance.
The text tokenizer is found through ``run.json`` (the interleave stage's ``text_tokenizer`` param) when
the table came from a run folder; without it, text runs are shown as token ids.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa


def _find_stage_params(paths: list[str]) -> dict[str, Any] | None:
    for p in paths:
        here = Path(p).resolve()
        for parent in ([here] if here.is_dir() else []) + list(here.parents)[:3]:
            run = parent / "run.json"
            if run.exists():
                try:
                    rec = json.loads(run.read_text())
                except ValueError:
                    continue
                for st in (rec.get("recipe") or rec).get("stages", []):
                    if str(st.get("uses", "")).endswith("interleave") or "InterleaveStage" in str(st.get("uses", "")):
                        return dict(st.get("params") or {})
    return None


def describe(table: pa.Table, console: Any, params: dict[str, Any] | None = None, max_units: int = 12,
             path: str | None = None) -> None:
    """Print tokens per format and the first interleaved row decoded run by run.

    The interleave params (text tokenizer, markers) come from ``params``, else from the ``run.json`` near
    ``path`` or near the file named in the table's ``path`` schema metadata."""
    from rich.table import Table

    if "tokens" not in table.column_names:
        console.print("no `tokens` column")
        return
    fmts = table.column("format").to_pylist() if "format" in table.column_names else ["?"] * table.num_rows
    lens = [len(t or []) for t in table.column("tokens").to_pylist()]
    rows, toks = Counter(fmts), Counter()
    for f, n in zip(fmts, lens):
        toks[f] += n
    t = Table(title=f"{table.num_rows} sequences, {sum(lens)} tokens")
    for c in ("format", "rows", "tokens", "share"):
        t.add_column(c, justify="left" if c == "format" else "right")
    for f in sorted(rows):
        t.add_row(str(f), str(rows[f]), str(toks[f]), f"{toks[f] / max(1, sum(lens)):.2f}")
    console.print(t)

    if params is None:
        src = table.schema.metadata or {}
        paths = [path] if path else [src[b"path"].decode()] if b"path" in src else []
        params = _find_stage_params(paths)
    pick = next((i for i, f in enumerate(fmts) if f == "interleaved"), 0 if table.num_rows else None)
    if pick is None:
        return
    tokens = table.column("tokens")[pick].as_py()
    words = table.column("words")[pick].as_py() if "words" in table.column_names else None
    console.print(f"[bold]example[/bold] {table.column('id')[pick].as_py()} ({fmts[pick]}, {len(tokens)} tokens)")
    if words:
        console.print("words: " + " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in words[:30]))
    if not params or not (params.get("text_tokenizer") or params.get("trained_tokenizer")):
        console.print(f"tokens: {tokens[:60]} ... (give the interleave params to decode)")
        return
    from .interleave import decode_sequence, make_vocab

    keys = ("preset", "mixture", "mode", "text_marker", "speech_marker")
    tok, vocab, _ = make_vocab(params.get("text_tokenizer"), params.get("num_units", 500),
                               trained_tokenizer=params.get("trained_tokenizer"),
                               **{k: params[k] for k in keys if k in params})
    spans = None
    if words and "units" in table.column_names and "unit_rate_hz" in table.column_names:
        from .wordspans import word_unit_spans

        units = table.column("units")[pick].as_py() or []
        durs = table.column("unit_durations")[pick].as_py() if "unit_durations" in table.column_names else None
        spans = word_unit_spans(words, len(units), table.column("unit_rate_hz")[pick].as_py() or 50.0, durs)
    ptr = 0
    for kind, payload in decode_sequence(tokens, vocab, tok):
        if kind == "text":
            console.print(f"  [green]{vocab.text_marker}[/green] {payload}")
            ptr += len(payload.split())
        elif kind == "speech":
            said = ""
            if spans and words and ptr < len(words):  # the words these units were spoken for
                end = next((e for e in range(len(words), ptr, -1)
                            if spans[e - 1][1] - spans[ptr][0] == len(payload)), None)
                if end is not None:
                    said = " (" + " ".join(w["word"] for w in words[ptr:end]) + ")"
                    ptr = end
            more = f" ... (+{len(payload) - max_units})" if len(payload) > max_units else ""
            console.print(f"  [cyan]{vocab.speech_marker}[/cyan]{said} {len(payload)} units: "
                          f"{' '.join(str(u) for u in payload[:max_units])}{more}")
