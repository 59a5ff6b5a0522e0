"""The published spoken benchmarks from a local folder -> the same pair table as ``slmfactory slm pairs``.

Nothing is downloaded: point at the folders the authors released and the ``spoken_bench`` recipe tokenizes
their audio like ours (``audio_root=<the folder>``), so one scorer serves both.

Layouts (assumed from the releases and their evaluation code):

* **sWUGGY / sBLIMP** (ZeroSpeech 2021): ``ROOT/lexical/{dev,test}/*.wav`` and ``ROOT/syntactic/{dev,test}/
  *.wav``, each split with ``gold.csv`` (header row; ``filename`` without ``.wav``, ``id``, ``voice``,
  ``correct`` 1/0; lexical also ``word``, syntactic ``type``/``subtype``/``transcription``). A pair is the
  correct and the incorrect file of one ``id`` spoken by one ``voice`` (as zerospeech2021's
  ``load_data``). The test gold files were withheld by the challenge: use ``dev`` unless you have them.
* **sSC / tSC** (spoken StoryCloze, the TWIST paper's release, as slamkit reads it): a folder of wavs
  named ``<index>_<label>.wav``; the two files of one index are a pair; the negative is the one whose
  label says ``incorrect``/``neg``/``false``/``wrong`` (else, as slamkit does, the second by name).
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

KINDS = {"swuggy": ("lexical", "lexical"), "sblimp": ("syntactic", "syntactic"), "ssc": ("story", None),
         "tsc": ("story", None)}
_NEG = re.compile(r"incorrect|neg|false|wrong|bad", re.I)


def zerospeech_pairs(root: str | Path, task: str, split: str = "dev") -> Iterator[dict[str, Any]]:
    """Pairs of a ZeroSpeech 2021 ``lexical`` or ``syntactic`` split; audio paths relative to ``root``."""
    root = Path(root)
    folder = root / task / split
    gold = folder / "gold.csv"
    if not gold.is_file():
        raise FileNotFoundError(f"{gold}: missing; give the ZeroSpeech 2021 dataset root (it holds {task}/{split}/"
                                f"gold.csv and the wavs){' - the test gold was withheld, use split=dev' if split == 'test' else ''}")
    groups: dict[tuple[str, str], dict[int, list[dict[str, str]]]] = defaultdict(lambda: {0: [], 1: []})
    with open(gold, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            missing = [c for c in ("filename", "id", "correct") if not row.get(c)]
            if missing:
                raise ValueError(f"{gold}:{n}: no {missing}; expected the ZeroSpeech 2021 gold.csv columns")
            groups[(row["id"], row.get("voice") or "")][int(row["correct"])].append(row)
    kind = "lexical" if task == "lexical" else "syntactic"
    for (pid, voice), g in sorted(groups.items()):
        for k, (pos, neg) in enumerate(zip(g[1], g[0])):
            paradigm = "word_nonword" if kind == "lexical" else pos.get("type") or ""
            yield {"pair_id": f"{kind}-{split}-{pid}-{voice}" + (f"-{k}" if k else ""), "kind": kind,
                   "paradigm": paradigm, "voice": voice,
                   "positive_audio": f"{task}/{split}/{pos['filename']}.wav",
                   "negative_audio": f"{task}/{split}/{neg['filename']}.wav",
                   "positive_text": pos.get("word") or pos.get("transcription") or None,
                   "negative_text": neg.get("word") or neg.get("transcription") or None}


def storycloze_pairs(folder: str | Path, name: str = "sSC") -> Iterator[dict[str, Any]]:
    """Pairs of a spoken StoryCloze folder (``<index>_<label>.wav``); audio paths relative to ``folder``."""
    folder = Path(folder)
    by_index: dict[int, list[Path]] = defaultdict(list)
    for p in sorted(folder.rglob("*.wav")):
        head = re.match(r"(\d+)", p.name)
        if head:
            by_index[int(head.group(1))].append(p)
    if not by_index:
        raise FileNotFoundError(f"{folder}: no <index>_<label>.wav files; give the {name} folder of the spoken "
                                f"StoryCloze release")
    for idx, files in sorted(by_index.items()):
        if len(files) != 2:
            raise ValueError(f"{folder}: index {idx} has {len(files)} files ({[f.name for f in files]}); expected "
                             f"a positive and a negative ending")
        neg = [f for f in files if _NEG.search(f.stem.split("_", 1)[-1])]
        pos_f, neg_f = (next(f for f in files if f is not neg[0]), neg[0]) if len(neg) == 1 else files
        yield {"pair_id": f"story-{name}-{idx:05d}", "kind": "story", "paradigm": name, "voice": "",
               "positive_audio": str(pos_f.relative_to(folder)), "negative_audio": str(neg_f.relative_to(folder))}


def published_pairs(name: str, path: str | Path, split: str = "dev") -> list[dict[str, Any]]:
    """``name`` in swuggy | sblimp (``path`` = the ZeroSpeech 2021 root) | ssc | tsc (``path`` = its folder)."""
    key = name.lower()
    if key not in KINDS:
        raise ValueError(f"unknown published benchmark {name!r}; use swuggy, sblimp, ssc or tsc")
    if key in ("swuggy", "sblimp"):
        return list(zerospeech_pairs(path, KINDS[key][1], split))
    return list(storycloze_pairs(path, "sSC" if key == "ssc" else "tSC"))
