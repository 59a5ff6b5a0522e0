"""What a run made and what to run next: every output folder with its size, the next commands, and the
rejected-share check.

Why: the end of a run is where a new user decides what to do; a summary that lists only ``manifest/``
hides ``packed/``, ``kmeans/``, ``text_tokenizer/`` and ``hf/``, and a run that rejected almost every row
must not look like a success. The runner's result may name its outputs (``outputs``) and the rejected
share (``rejected_share``); without them both are read from the run folder and the counts.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

INTERNAL = {"_inputs", "_state", ".lock", ".slmfactory.json"}
ORDER = ("manifest", "errors", "packed", "kmeans", "text_tokenizer", "templates.json", "audio", "hf", "report",
         "report.html", "logs", "run.json")
WHAT = {"manifest": "good rows", "errors": "rejected rows: stage + reason", "packed": "training blocks",
        "kmeans": "unit codebook", "text_tokenizer": "text tokenizer", "audio": "synthesized clips",
        "hf": "Hugging Face dataset + card", "templates.json": "instruction templates", "logs": "Ray and worker logs",
        "report": "HTML data card", "report.html": "HTML data card", "run.json": "recipe, versions, counts"}


def field(res: Any, key: str, default: Any = None) -> Any:
    """A key of the run result, whether it is a dict or an object (the runner adds keys over time)."""
    if isinstance(res, dict):
        return res.get(key, default)
    return getattr(res, key, default)


def rejected_share(res: Any) -> float:
    """Share of output records that ended in OUT/errors: errors / (good rows + errors), else the runner's figure."""
    rows, errors = int(field(res, "rows", 0) or 0), int(field(res, "errors", 0) or 0)
    if rows + errors:
        return errors / (rows + errors)
    share = field(res, "rejected_share")
    return float(share) if isinstance(share, (int, float)) else 0.0


def outputs(res: Any) -> list[tuple[str, Path, str]]:
    """``(name, path, size)`` of every output of the run folder, in a fixed order (internal files left out)."""
    out = Path(field(res, "out_dir"))
    named = field(res, "outputs") or {}
    paths = {str(k): Path(v) for k, v in named.items()} if isinstance(named, dict) else {}
    if out.is_dir():
        for p in out.iterdir():
            if p.name not in INTERNAL and not p.name.startswith(".") and p not in paths.values():
                paths.setdefault(p.name, p)
    rank = {n: i for i, n in enumerate(ORDER)}
    return [(n, p, size(p)) for n, p in sorted(paths.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0]))
            if p.exists()]


def size(path: Path) -> str:
    """Rows for Parquet (read from the footers, no data), files otherwise."""
    if path.is_file():
        return f"{path.stat().st_size / 1e3:.1f} kB" if path.suffix != ".parquet" else _n(_rows([path]), "row")
    parquet = sorted(path.rglob("*.parquet"))
    if parquet:
        return _n(_rows(parquet), "row")
    files = [p for p in path.rglob("*") if p.is_file()]
    return _n(len(files), "file")


def _rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    n = 0
    for f in files:
        try:
            n += pq.read_metadata(f).num_rows
        except (OSError, ValueError):
            continue
    return n


def next_commands(recipe: str, out: str | os.PathLike) -> list[str]:
    """The commands that continue from this run folder (the chain ingest -> units -> interleaved -> train)."""
    o = str(out).rstrip("/")  # new folders beside OUT, named after it: never another run's folder
    nxt = {
        "ingest": [f"slmfactory run units corpus={o} out={o}_units",
                   f"slmfactory run interleaved corpus={o} out={o}_interleaved"],
        "interleaved": [f"slmfactory slm train {o}/packed -o {o}_slm" + _init_flag(o)],
    }.get(recipe, [])
    if recipe.startswith("synth"):
        nxt = [f"python -c \"import datasets; print(datasets.load_dataset('{o}/hf', split='train'))\""]
    return [*nxt, f"slmfactory report {o}", f"slmfactory inspect {o}"]


def top_reasons(out: str | os.PathLike, n: int = 3) -> list[tuple[str, int]]:
    """The most common rejection reasons in OUT/errors, file names taken out so that rows group."""
    import pyarrow.parquet as pq

    counts: Counter[str] = Counter()
    for f in sorted(Path(out, "errors").glob("*.parquet")):
        try:
            t = pq.read_table(f, columns=["stage", "reason"])
        except (OSError, ValueError, KeyError):
            continue
        for stage, err in zip(t.column("stage").to_pylist(), t.column("reason").to_pylist()):
            counts[f"{stage}: {_generic(str(err))}"] += 1
    return counts.most_common(n)


def _generic(reason: str) -> str:
    """``/data/a/x.wav: cannot decode (...)`` -> ``cannot decode (...)``: the part shared by many rows."""
    reason = re.sub(r"^\S+?(:\d+)?: ", "", reason.strip(), count=1)
    return reason if len(reason) <= 110 else reason[:107] + "..."


def rejected_warning(res: Any, threshold: float) -> str | None:
    """The warning to print (and exit 3 on) when more than ``threshold`` of the rows were rejected."""
    share = rejected_share(res)
    if share <= threshold:
        return None
    out = field(res, "out_dir")
    lines = [f"{share:.0%} of the rows were rejected (more than max_rejected={threshold:g}); the good rows may "
             f"not be worth using. Look at {out}/errors (`slmfactory inspect {out}/errors`). Top reasons:"]
    lines += [f"  {c} x {r}" for r, c in top_reasons(out)]
    lines.append("Fix the input or the recipe, or accept this share with --max-rejected 0.9 (recipe key "
                 "max_rejected).")
    return "\n".join(lines)


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _init_flag(out: str) -> str:
    """TWIST init needs text ids of the LM's own tokenizer: a packed set made with a corpus-trained sentencepiece
    model can only train from cold (the trainer would refuse and say so; better to suggest what works)."""
    import json

    try:
        info = json.loads(Path(out, "packed", "dataset_info.json").read_text())
    except (OSError, ValueError):
        return ""
    return " --init cold" if (info.get("text_tokenizer") or {}).get("kind") == "sentencepiece" else ""
