"""Discovery throughput on large corpus-shaped trees, as a ratio to a bare sorted ``os.walk`` listing.

Why these trees: discovery never decodes audio, so 0-byte placeholder files are enough to measure the
walk + sidecar/transcript reading that decides how long listing a 60k-hour corpus takes. The baseline
(``os.walk`` with sorted names, no parsing) is measured in the same run; medians of ``--repeat`` runs.

    .venv/bin/python bench/bench_discovery.py [--files 20000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from slmfactory.manifests.corpora import discover
from timing import timed  # bench/timing.py (the script's folder is on sys.path)


def make_librilight(root: Path, files: int) -> None:
    per_book, books_per_spk = 20, 5
    va = [[0.5 + 3 * i, 2.5 + 3 * i] for i in range(40)]
    for k in range(files):
        spk, rest = divmod(k, per_book * books_per_spk)
        d = root / str(spk) / f"book_{rest // per_book}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"ch_{rest % per_book:02d}.flac").write_bytes(b"")
        (d / f"ch_{rest % per_book:02d}.json").write_text(json.dumps(
            {"speaker": str(spk), "snr": 12.0, "voice_activity": va,
             "book_meta": {"id": str(rest), "title": "A Book", "authors": [{"first_name": "A", "last_name": "B"}],
                           "description": "x" * 2000}}))


def make_librispeech(root: Path, files: int) -> None:
    per_ch = 50
    for k in range(0, files, per_ch):
        spk, ch = divmod(k // per_ch, 4)
        d = root / str(spk) / str(ch)
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for u in range(per_ch):
            uid = f"{spk}-{ch}-{u:04d}"
            (d / f"{uid}.flac").write_bytes(b"")
            lines.append(f"{uid} THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG NUMBER {u}")
        (d / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")


def baseline(root: Path) -> int:
    n = 0
    for d, dirs, names in os.walk(root):
        dirs.sort()
        n += len(sorted(names))
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make in (("librilight", make_librilight), ("librispeech", make_librispeech)):
            root = Path(tmp) / kind
            make(root, a.files)
            t_base, n_files = timed(lambda: baseline(root), a.repeat)
            t_ours, n_items = timed(lambda: sum(1 for _ in discover(kind, root)), a.repeat)
            print(f"{kind:12s} {n_items:7d} items  discover {t_ours:6.3f}s ({n_items / t_ours:9.0f} items/s)  "
                  f"bare os.walk of {n_files} files {t_base:6.3f}s  ratio {t_ours / t_base:5.1f}x")


if __name__ == "__main__":
    main()
