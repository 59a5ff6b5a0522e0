"""Packing (a ``finalize`` hook): many variable-length sequences -> fixed-length training blocks.

Why a hook and not a stage: packing crosses row boundaries (many rows -> few blocks) and must see the
whole, finished manifest. It is also where the mixture is honoured per TOKEN: each row arrives with its sequence
in every format it can take (``format``/``tokens`` and ``alt_formats``/``alt_tokens``, see ``interleave``), and
``MixtureBalancer`` keeps, row by row in manifest order, the stage's draw while the achieved token shares stay near
the configured mixture and otherwise the format that brings them closest (deterministic, one pass, memory = a few
counters). Manifest order
does not depend on the shard size, so the same rows give the same blocks however the run was sharded. Sequences are concatenated in manifest order, each followed by ``[EOS]`` (the
document separator), and cut every ``context_length`` tokens; a sequence longer than a block continues in
the next one. Each block row carries ``input_ids``, ``loss_mask`` (0 on padding only) and ``position_ids``
(reset at every document start, for trainers that do not attend across documents). The last block is padded.

Output: ``OUT/packed/shard-XXXXX.parquet`` and ``OUT/packed/dataset_info.json`` (vocabulary layout, special
tokens, unit and text tokenizers, formats with their proportions and token counts) — what the trainer reads.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .interleave import make_vocab

PACKED_SCHEMA = pa.schema([
    pa.field("input_ids", pa.list_(pa.int32())),
    pa.field("loss_mask", pa.list_(pa.int8())),
    pa.field("position_ids", pa.list_(pa.int32())),
    pa.field("num_documents", pa.int32()),
])


def iter_documents(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """``{id, format, tokens, tokenizer, alt_formats, alt_tokens}`` of every manifest row with tokens, in shard
    then row order, read one record batch at a time (memory independent of corpus size)."""
    for p in sorted(str(x) for x in paths):
        pf = pq.ParquetFile(p)
        names = set(pf.schema_arrow.names)
        if "tokens" not in names:
            continue
        cols = [c for c in ("id", "format", "tokens", "tokenizer", "alt_formats", "alt_tokens") if c in names]
        for rb in pf.iter_batches(columns=cols, batch_size=1024):
            d = rb.to_pydict()
            for i in range(rb.num_rows):
                if d["tokens"][i]:
                    yield {c: d[c][i] for c in cols}


class MixtureBalancer:
    """Picks one candidate sequence per row so that token shares per format track ``mixture``.

    The stage's draw is kept while it leaves every share within ``slack`` of its target (the draw keeps formats
    random across rows); otherwise the pick is the candidate that minimises sum_f (tokens_f - share_f * total)^2
    after adding it (ties: mixture order). Achieved shares end within about one sequence of the target.
    """

    def __init__(self, mixture: dict[str, float], slack: float = 0.01):
        self.mixture, self.slack = dict(mixture), float(slack)
        self.tokens: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.repicked = 0

    def _after(self, f: str, n: int) -> list[float]:
        total = sum(self.tokens.values()) + n
        return [(self.tokens[g] + (n if g == f else 0)) / total - self.mixture.get(g, 0.0)
                for g in set(self.mixture) | set(self.tokens) | {f}]

    def pick(self, candidates: dict[str, Any], drawn: str) -> str:
        best = drawn
        if max(map(abs, self._after(drawn, len(candidates[drawn])))) > self.slack:
            order = [drawn] + [g for g in self.mixture if g != drawn and g in candidates]
            errs = [sum(e * e for e in self._after(f, len(candidates[f]))) for f in order]
            best = order[int(np.argmin(errs))]
        self.tokens[best] += len(candidates[best])
        self.rows[best] += 1
        self.repicked += best != drawn
        return best


def pack_tokens(docs: Iterable[list[int]], context_length: int, eos_id: int, pad_id: int) -> Iterator[dict[str, Any]]:
    """Greedy concatenation into blocks of exactly ``context_length`` tokens."""
    ids: list[int] = []
    pos: list[int] = []
    starts = 0
    for doc in docs:
        seq = list(doc) + [eos_id]
        positions = list(range(len(seq)))
        starts += 1
        while seq:
            room = context_length - len(ids)
            ids += seq[:room]
            pos += positions[:room]
            seq, positions = seq[room:], positions[room:]
            if len(ids) == context_length:
                yield {"input_ids": ids, "loss_mask": [1] * context_length, "position_ids": pos, "num_documents": starts}
                ids, pos, starts = [], [], 0
    if ids:
        n = len(ids)
        yield {"input_ids": ids + [pad_id] * (context_length - n), "loss_mask": [1] * n + [0] * (context_length - n),
               "position_ids": pos + [0] * (context_length - n), "num_documents": starts}


def pack_shards(ctx: Any, text_tokenizer: str | None = None, num_units: int = 500, context_length: int | None = None,
                preset: str = "default", blocks_per_shard: int = 512, out_subdir: str = "packed",
                text_marker: str | None = None, speech_marker: str | None = None, mixture: dict | None = None,
                quiet: bool = False, trained_tokenizer: str | None = None) -> dict[str, Any]:
    """``finalize`` hook. Use the same ``text_tokenizer``/``num_units``/``preset`` as the interleave stage."""
    tok, vocab, params = make_vocab(text_tokenizer, num_units, preset, trained_tokenizer, text_marker=text_marker,
                                    speech_marker=speech_marker, mixture=mixture)
    ctx_len = int(context_length or params["context_length"])
    out = Path(ctx.out_dir) / out_subdir
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.parquet"):  # a re-run replaces the packed set as a whole
        old.unlink()
    bal = MixtureBalancer(params["mixture"])
    rows_per_format, tokens_per_format = bal.rows, bal.tokens
    unit_tokenizers: Counter[str] = Counter()

    def docs() -> Iterator[list[int]]:
        for d in iter_documents(ctx.manifest_paths()):
            drawn = d.get("format") or "unknown"
            cands = {drawn: d["tokens"], **dict(zip(d.get("alt_formats") or [], d.get("alt_tokens") or []))}
            if d.get("tokenizer"):
                unit_tokenizers[d["tokenizer"]] += 1
            yield cands[bal.pick(cands, drawn)]

    shard, buf, n_blocks, pad = 0, [], 0, 0
    for block in pack_tokens(docs(), ctx_len, vocab.eos_id, vocab.pad_id):
        buf.append(block)
        n_blocks += 1
        pad += ctx_len - int(np.sum(block["loss_mask"]))
        if len(buf) == blocks_per_shard:
            _write(out / f"shard-{shard:05d}.parquet", buf)
            shard, buf = shard + 1, []
    if buf:
        _write(out / f"shard-{shard:05d}.parquet", buf)
        shard += 1
    total = sum(tokens_per_format.values())
    info = {
        "context_length": ctx_len,
        "num_blocks": n_blocks,
        "num_shards": shard,
        "num_documents": sum(rows_per_format.values()),
        "tokens": {"total": total + sum(rows_per_format.values()), "per_format": dict(sorted(tokens_per_format.items())),
                   "eos": sum(rows_per_format.values()), "padding": pad},
        "formats": {f: {"rows": rows_per_format[f], "tokens": tokens_per_format[f],
                        "row_share": rows_per_format[f] / max(1, sum(rows_per_format.values())),
                        "token_share": tokens_per_format[f] / max(1, total),
                        "configured_share": params["mixture"].get(f, 0.0)}
                    for f in sorted(set(rows_per_format) | set(params["mixture"]))},
        "mixture": params["mixture"],
        "mixture_balance": {"method": "stage's draw while all shares are within slack, else the row's "
                                      "format that brings token shares closest (manifest order)", "slack": bal.slack,
                            "rows_repicked": bal.repicked,
                            "max_share_error": max((abs(tokens_per_format[f] / max(1, total) - w)
                                                    for f, w in params["mixture"].items()), default=0.0)},
        "interleave": {k: params[k] for k in ("mode", "lam", "eta", "p", "min_span", "max_span") if k in params},
        "text_tokenizer": {"kind": tok.kind, "path": tok.path, "vocab_size": tok.vocab_size},
        "unit_tokenizer": sorted(unit_tokenizers) or None,
        "tokenize": _tokenize_params(ctx),
        "columns": {"input_ids": "int32 ids in the shared vocabulary", "loss_mask": "1 = train on this token, 0 = padding",
                    "position_ids": "reset at each document start"},
        **vocab.info(),
        "seed": getattr(ctx, "seed", None),
    }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    if not quiet:
        print_counts(info)
    return info


def _tokenize_params(ctx: Any) -> dict[str, Any] | None:
    """The recipe's ``tokenize`` stage parameters: inference must turn prompt audio into units the same way."""
    for st in getattr(getattr(ctx, "recipe", None), "stages", None) or []:
        if getattr(st, "uses", None) == "tokenize":
            return dict(st.params or {})
    return None


def _write(path: Path, blocks: list[dict[str, Any]]) -> None:
    cols = {k: [b[k] for b in blocks] for k in PACKED_SCHEMA.names}
    pq.write_table(pa.table(cols, schema=PACKED_SCHEMA), path)


def print_counts(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"packed: {info['num_blocks']} blocks x {info['context_length']} tokens")
    for c in ("format", "rows", "tokens", "token share", "row share", "configured"):
        t.add_column(c, justify="left" if c == "format" else "right")
    for f, d in info["formats"].items():
        t.add_row(f, str(d["rows"]), str(d["tokens"]), f"{d['token_share']:.2f}", f"{d['row_share']:.2f}",
                  f"{d['configured_share']:.2f}")
    con = Console()
    con.print(t)
    text_rows = (info["formats"].get("text") or {}).get("row_share", 0.0)
    if text_rows > 0.3:
        con.print(f"{text_rows:.0%} of the utterances are text rows: their audio is not trained on. For a speech "
                  f"model pack mixture='{{speech: 0.6, interleaved: 0.4}}' and give `slm train --text-corpus` "
                  f"(docs/slm.md, Mixture vs. audio used)")
    err = (info.get("mixture_balance") or {}).get("max_share_error", 0.0)
    if err > 0.03:
        con.print(f"[yellow]token shares are {err:.2f} off the mixture: too few rows can take the short formats "
                  f"(text needs a transcript, interleaved needs word times), or the corpus is only a few rows")
