"""Spoken-benchmark evaluation: a speech LM and the unigram/bigram baselines on the same pair sequences.

``evaluate(model_dir, bench, train_data)`` reads a ``spoken_bench`` run (or a JSONL of token-id pairs),
scores every member with the model (``score.py``) and with n-gram baselines fitted on the training
data's packed shards (``baselines.py``), and returns accuracies per kind (lexical / syntactic / story)
and per paradigm. ``render`` prints them as one table, the model beside its baselines.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from . import baselines, score
from .score import Pair, ScoreConfig


def load_pairs(path: str | Path) -> list[Pair]:
    """A JSONL of token-id pairs, ``{"positive": [ids], "negative": [ids]}`` (+ optional ``kind``,
    ``paradigm``, ``pair_id``): sequences already in the model's vocabulary, scored as given."""
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if not isinstance(obj, dict) or "positive" not in obj or "negative" not in obj:
            raise ValueError(f"{path}:{n}: each line needs 'positive' and 'negative' token-id lists")
        pairs.append(Pair(str(obj.get("pair_id", f"pair-{n:05d}")), str(obj.get("kind", "pairs")),
                          str(obj.get("paradigm", "")), [int(t) for t in obj["positive"]],
                          [int(t) for t in obj["negative"]]))
    return pairs


def _acc(rows: Sequence[dict[str, Any]], key: str) -> float:
    return score.accuracy([r[key][0] for r in rows], [r[key][1] for r in rows])


def summarize(rows: list[dict[str, Any]], systems: Sequence[str]) -> dict[str, Any]:
    """``{kind: {pairs, <system>: accuracy, paradigms: {name: {...}}}}`` from per-pair NLLs."""
    out: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}):
        sub = [r for r in rows if r["kind"] == kind]
        entry: dict[str, Any] = {"pairs": len(sub), **{s: _acc(sub, s) for s in systems}, "paradigms": {}}
        for par in sorted({r["paradigm"] for r in sub if r["paradigm"]}):
            ps = [r for r in sub if r["paradigm"] == par]
            entry["paradigms"][par] = {"pairs": len(ps), **{s: _acc(ps, s) for s in systems}}
        out[kind] = entry
    return out


def evaluate(model_dir: str | Path, bench: str | Path, train_data: str | Path | None = None,
             cfg: ScoreConfig | None = None, k: float = 1.0, model_and_info: tuple[Any, dict] | None = None,
             per_pair: bool = False) -> dict[str, Any]:
    """Accuracies of the model and (with ``train_data``) the unigram/bigram baselines, per kind and paradigm."""
    cfg = cfg or ScoreConfig()
    model, info = model_and_info or score.load_model(model_dir, cfg.device)
    vocab = score.vocab_from_info(info)
    bench = Path(bench)
    notes: dict[str, Any] = {}
    if bench.is_file() and bench.suffix == ".jsonl":
        pairs = load_pairs(bench)  # token ids as given
        seqs = [(p.positive, p.negative) for p in pairs]
    else:
        pairs, notes = score.read_bench(bench)
        score.check_units(pairs, vocab)
        trained_on = info.get("unit_tokenizer") or []
        mismatch = [t for t in notes["tokenizers"] if trained_on and t not in trained_on]
        if mismatch:
            raise ValueError(f"{bench}: tokenized with {mismatch}, but the model was trained on units from "
                             f"{trained_on}; run spoken_bench with the training run's tokenizer, kmeans and dedup")
        seqs = [tuple(score.trim(score.speech_sequence(u, vocab, cfg.eos), cfg) for u in (p.positive, p.negative))
                for p in pairs]
    if not pairs:
        raise ValueError(f"{bench}: no complete pairs to score")
    flat = [s for pos_neg in seqs for s in pos_neg]
    nll = score.mean_nll(model, flat, cfg, vocab)
    systems = ["model"]
    rows = [{"pair_id": p.pair_id, "kind": p.kind, "paradigm": p.paradigm, "model": (nll[2 * i], nll[2 * i + 1])}
            for i, p in enumerate(pairs)]
    fitted = None
    if train_data is not None:
        fitted = baselines.fit(train_data, k=k, vocab_size=int(info["vocab_size"]))
        if cfg.restrict:
            fitted.restrict(score.allowed_ids(vocab))
        systems += ["unigram", "bigram"]
        for r, (pos, neg) in zip(rows, seqs):
            r["unigram"] = (fitted.unigram_nll(pos), fitted.unigram_nll(neg))
            r["bigram"] = (fitted.bigram_nll(pos), fitted.bigram_nll(neg))
    res: dict[str, Any] = {
        "model": str(model_dir), "bench": str(bench), "train_data": None if train_data is None else str(train_data),
        "settings": {"marker": cfg.marker, "eos": cfg.eos, "restrict": cfg.restrict, "add_k": k},
        "baseline_tokens": None if fitted is None else fitted.tokens,
        "pairs": len(pairs), "kinds": summarize(rows, systems),
        "incomplete_pairs": len(notes.get("incomplete_pairs", [])), "voice_mismatch": notes.get("voice_mismatch", []),
        "unit_tokenizer": notes.get("tokenizers"),
    }
    if per_pair:
        res["per_pair"] = rows
    return res


def render(res: dict[str, Any], console: Any = None) -> None:
    """One table: a row per kind (bold) then its paradigms; model | unigram | bigram accuracies in %."""
    from rich.console import Console
    from rich.table import Table

    systems = [s for s in ("model", "unigram", "bigram") if any(s in v for v in res["kinds"].values())]
    s = res["settings"]
    t = Table(title=f"spoken benchmarks: pair accuracy % (marker={s['marker']}, restrict={s['restrict']}, "
                    f"eos={s['eos']}; chance 50)")
    t.add_column("kind / paradigm")
    t.add_column("pairs", justify="right")
    for name in systems:
        t.add_column(name, justify="right")
    for kind, v in res["kinds"].items():
        t.add_row(f"[bold]{kind}[/bold]", str(v["pairs"]), *(f"[bold]{100 * v[n]:.1f}[/bold]" for n in systems))
        for par, pv in v["paradigms"].items():
            t.add_row(f"  {par}", str(pv["pairs"]), *(f"{100 * pv[n]:.1f}" for n in systems))
    console = console or Console()
    console.print(t)
    if res.get("incomplete_pairs"):
        console.print(f"[yellow]{res['incomplete_pairs']} pairs lost a member (see the bench run's errors/); "
                      f"not scored[/yellow]")
    if res.get("voice_mismatch"):
        console.print(f"[yellow]{len(res['voice_mismatch'])} pairs were spoken by two voices[/yellow]")
