"""Word->unit spans, text tokenizers, the four sequence formats, and packing.

No acoustic model: unit rows are built here (units at 50 Hz from a deterministic function of time, with
and without run-length dedup) and word times are synthetic, except one end-to-end test that aligns
espeak-ng speech with pocketsphinx's bundled model. Text tokenizers are trained in tmp_path
(sentencepiece, and a Hugging Face ``tokenizers`` WordLevel model) and loaded back from that local path.
"""
from __future__ import annotations

import json
from collections import Counter
from itertools import groupby
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from slmfactory.manifests import generate as gen
from slmfactory.manifests.schema import table_from_rows
from slmfactory.stages.interleave import (InterleaveStage, build_sequence, decode_sequence, make_vocab,
                                          resolve_params, runs, speech_mask)
from slmfactory.stages.pack import pack_shards
from slmfactory.stages.texttok import TextTokenizer, train_sentencepiece
from slmfactory.stages.wordspans import word_unit_spans

RATE = 50.0
K = 100  # unit vocabulary


def fake_units(duration: float, dedup: bool, phase: int = 0):
    """Units at 50 Hz: a slow deterministic function of time (runs of equal units), optionally deduplicated."""
    frames = [((i // 7) * 37 + phase) % K for i in range(int(duration * RATE))]
    if not dedup:
        return frames, None
    units, durs = [], []
    for u, g in groupby(frames):
        units.append(u)
        durs.append(len(list(g)))
    return units, durs


def fake_words(text: str, rng: np.random.Generator, lead: float = 0.2):
    t, out = lead, []
    for w in text.split():
        d = float(rng.uniform(0.15, 0.5))
        out.append({"word": w, "start": round(t, 3), "end": round(t + d, 3), "score": 0.9})
        t += d + float(rng.uniform(0.0, 0.2))
    return out, t + lead


def unit_rows(n: int, dedup: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = gen.SENTENCES[i % len(gen.SENTENCES)]
        words, dur = fake_words(text, rng)
        units, durs = fake_units(dur, dedup, phase=i)
        rows.append({"id": f"row{i:04d}", "audio_path": f"a{i}.wav", "start": 0.0, "duration": dur, "text": text,
                     "words": words, "units": units, "unit_durations": durs, "unit_rate_hz": RATE,
                     "tokenizer": "fake-50hz"})
    return rows


def columns(rows):
    return {k: [r.get(k) for r in rows] for k in rows[0]}


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("spm")
    train_sentencepiece(gen.SENTENCES, d, vocab_size=120)
    return d


# --- word -> unit spans -----------------------------------------------------------------------------
@pytest.mark.parametrize("dedup", [False, True])
def test_word_unit_spans_match_times(dedup):
    rows = unit_rows(6, dedup=dedup)
    for r in rows:
        spans = word_unit_spans(r["words"], len(r["units"]), RATE, r["unit_durations"])
        assert spans[0][0] == 0 and spans[-1][1] == len(r["units"])
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # a partition, in order
        durs = r["unit_durations"] or [1] * len(r["units"])
        starts = np.concatenate([[0], np.cumsum(durs)[:-1]])  # first frame of each unit
        for w, (a, b) in zip(r["words"][1:], spans[1:]):
            f = int(w["start"] * RATE + 1e-6)
            assert starts[a] <= f < starts[a] + durs[a]  # the word starts inside its first unit
    with pytest.raises(ValueError):
        word_unit_spans(rows[0]["words"], 3, RATE, [1, 2])


# --- text tokenizers -------------------------------------------------------------------------------
def test_sentencepiece_round_trip_and_hf_tokenizer(spm_dir, tmp_path):
    tok = TextTokenizer(spm_dir)
    assert tok.kind == "sentencepiece" and 30 < tok.vocab_size <= 120
    for s in gen.SENTENCES[:5] + ["zebra quiz jumps"]:  # unseen words still round-trip (required_chars)
        assert tok.decode(tok.encode(s)) == s
    # a Hugging Face tokenizer.json from a local directory
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    hf = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.decoder = decoders.WordPiece()
    hf.train_from_iterator(gen.SENTENCES, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    (tmp_path / "hf").mkdir()
    hf.save(str(tmp_path / "hf" / "tokenizer.json"))
    t2 = TextTokenizer(tmp_path / "hf")
    assert t2.kind == "hf" and t2.decode(t2.encode(gen.SENTENCES[3])) == gen.SENTENCES[3]
    with pytest.raises(FileNotFoundError, match="train_text_tokenizer"):
        TextTokenizer(tmp_path / "missing")


# --- sequences -------------------------------------------------------------------------------------
def test_masks_follow_their_mode():
    rng = np.random.default_rng(0)
    for n in (1, 7, 40, 200):
        m = speech_mask(n, rng, "poisson", lam=10, eta=0.3)
        assert m.sum() == int(np.ceil(0.3 * n)) or n < 3  # exactly ceil(eta*N) speech words
        sp = [b - a for s, a, b in runs(m) if s]
        assert all(x >= 1 for x in sp)
    m = speech_mask(4000, rng, "random", p=0.5)
    assert 0.45 < m.mean() < 0.55
    m = speech_mask(300, rng, "span", min_span=2, max_span=4)
    assert all(2 <= b - a <= 4 for _, a, b in runs(m)[:-1])


def test_interleaved_decodes_back_to_words_and_units(spm_dir):
    tok, vocab, params = make_vocab(str(spm_dir), K, "default", mode="random", p=0.5)
    rng = np.random.default_rng(3)
    for r in unit_rows(20):
        words = [w["word"] for w in r["words"]]
        spans = word_unit_spans(r["words"], len(r["units"]), RATE, r["unit_durations"])
        tokens, plan = build_sequence("interleaved", words, r["units"], spans, tok, vocab, rng, params)
        decoded = decode_sequence(tokens, vocab, tok)
        assert [k for k, _ in decoded] == [m for m, _, _ in plan]
        assert plan[0][1] == 0 and plan[-1][2] == len(words) and all(p[2] == q[1] for p, q in zip(plan, plan[1:]))
        speech_units = []
        for (kind, payload), (_, a, b) in zip(decoded, plan):
            if kind == "text":
                assert payload == " ".join(words[a:b])
            else:
                assert payload == r["units"][spans[a][0]: spans[b - 1][1]] and payload
                speech_units += payload
        assert all(t >= 0 and t < vocab.size for t in tokens)
        # concatenated formats carry all the words and all the units
        for fmt in ("speech_text", "text_speech"):
            toks, _ = build_sequence(fmt, words, r["units"], None, tok, vocab, rng, params)
            d = dict(decode_sequence(toks, vocab, tok))
            assert d["text"] == " ".join(words) and d["speech"] == list(r["units"])


def test_stage_formats_proportions_and_reproducibility(spm_dir):
    """The stage draws each row's format with probability ~ share / length (so TOKEN shares, not row shares,
    follow the mixture in expectation; a per-row draw by share gave text 0.08 of the tokens for 0.20 configured)
    and keeps the row's other formats for the packer, which makes the shares exact (next tests)."""
    rows = unit_rows(600)
    mixture = {"text": 0.2, "interleaved": 0.54, "speech": 0.25, "speech_text": 0.01}
    stage = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, seed=7, mixture=mixture)
    out = stage(columns(rows))
    assert out["error"] == [None] * len(rows)
    tokens = Counter()
    for f, t in zip(out["format"], out["tokens"]):
        tokens[f] += len(t)
    total = sum(mixture.values())
    for f, w in mixture.items():
        assert abs(tokens[f] / sum(tokens.values()) - w / total) < 0.06, (f, tokens)
    for f, alt in zip(out["format"], out["alt_formats"]):  # every row here has words and times: all formats
        assert sorted([f] + list(alt)) == sorted(mixture)
    # same seed -> same output, whatever the batching; another seed -> different choices
    halves = [stage(columns(rows[:250])), stage(columns(rows[250:]))]
    assert halves[0]["format"] + halves[1]["format"] == out["format"]
    assert [list(t) for t in halves[0]["tokens"] + halves[1]["tokens"]] == [list(t) for t in out["tokens"]]
    again = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, seed=7, mixture=mixture)(columns(rows))
    assert [list(t) for t in again["tokens"]] == [list(t) for t in out["tokens"]]
    other = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, seed=8, mixture=mixture)(columns(rows))
    assert other["format"] != out["format"]
    # each format's shape
    v = stage.vocab
    for fmt, toks, r in zip(out["format"], out["tokens"], rows):
        toks = list(toks)
        if fmt == "speech":
            assert toks == [v.speech_id] + [v.unit_offset + u for u in r["units"]]
        elif fmt == "text":
            assert toks[0] == v.text_id and max(toks) < v.text_size + 4
        elif fmt == "interleaved":
            assert v.text_id in toks or v.speech_id in toks
    # the preset's markers
    sl = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, preset="slamkit")
    assert sl.vocab.text_marker == "<text>" and sl.params["mode"] == "poisson" and sl.params["lam"] == 10.0
    assert resolve_params("spiritlm")["speech_marker"] == "[Speech]"


def test_bad_rows_are_rejected_not_lost(spm_dir):
    rows = unit_rows(3)
    rows[0]["units"] = [K + 5, 1, 2]
    rows[0]["unit_durations"] = None
    rows[1]["units"] = None
    stage = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, mixture={"interleaved": 1.0})
    out = stage(columns(rows))
    assert len(out["id"]) == 3
    assert "num_units" in out["error"][0] and "tokenize" in out["error"][1] and out["error"][2] is None
    # a row without transcript takes the formats it can (speech) instead of being rejected; none possible: rejected
    rows = unit_rows(2)
    rows[0].update(words=[], text=None)
    rows[1].update(words=[])  # transcript but no word times: every format but interleaved
    out = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K)(columns(rows))
    assert out["error"] == [None, None] and out["format"][0] == "speech" and list(out["alt_formats"][0]) == []
    assert sorted([out["format"][1], *out["alt_formats"][1]]) == ["speech", "text"]
    out = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, mixture={"text": 1.0})(columns(rows[:1]))
    assert "needs a transcript" in out["error"][0]


# --- packing ---------------------------------------------------------------------------------------
class Ctx:
    """The part of pipelines.context.RunContext that pack_shards uses."""

    def __init__(self, out_dir: Path, seed: int = 0):
        self.out_dir, self.seed = out_dir, seed

    def manifest_paths(self):
        return sorted(str(p) for p in (self.out_dir / "manifest").glob("shard-*.parquet"))


def test_pack_blocks_info_and_readers(spm_dir, tmp_path):
    rows = unit_rows(40)
    stage = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, seed=1)
    out = stage(columns(rows))
    out.pop("error"), out.pop("error_stage")
    (tmp_path / "manifest").mkdir()
    for s in range(2):  # two shards
        part = {k: v[s * 20:(s + 1) * 20] for k, v in out.items()}
        pq.write_table(table_from_rows(part), tmp_path / "manifest" / f"shard-{s:05d}.parquet")
    info = pack_shards(Ctx(tmp_path), text_tokenizer=str(spm_dir), num_units=K, context_length=64,
                       blocks_per_shard=8, quiet=True)
    packed = sorted((tmp_path / "packed").glob("shard-*.parquet"))
    assert len(packed) == info["num_shards"] >= 2
    disk = json.loads((tmp_path / "packed" / "dataset_info.json").read_text())
    assert disk["num_blocks"] == info["num_blocks"] and disk["vocab_size"] == stage.vocab.size
    assert disk["special_tokens"]["[EOS]"] == stage.vocab.eos_id and disk["unit_offset"] == stage.vocab.unit_offset
    assert disk["unit_tokenizer"] == ["fake-50hz"] and disk["text_tokenizer"]["kind"] == "sentencepiece"
    assert sum(f["rows"] for f in disk["formats"].values()) == 40
    # the packer picks one of each row's formats (the stage's draw or an alternative) to honour token shares
    candidates = [{f: list(t), **{a: list(b) for a, b in zip(af, at)}}
                  for f, t, af, at in zip(out["format"], out["tokens"], out["alt_formats"], out["alt_tokens"])]
    # every block is full length; un-padding and splitting on EOS gives the sequences back, in order
    import polars as pl

    df = pl.read_parquet([str(p) for p in packed])
    assert df.height == info["num_blocks"] and set(df["input_ids"].list.len().to_list()) == {64}
    stream = []
    for ids, mask, pos in zip(df["input_ids"].to_list(), df["loss_mask"].to_list(), df["position_ids"].to_list()):
        stream += [i for i, m in zip(ids, mask) if m]
        assert all(m == 0 for m in mask[sum(mask):])  # padding only at the end
    docs, cur = [], []
    for t in stream:
        if t == stage.vocab.eos_id:
            docs.append(cur)
            cur = []
        else:
            cur.append(t)
    assert len(docs) == len(candidates) and all(d in c.values() for d, c in zip(docs, candidates))
    picked = Counter()
    for d, c in zip(docs, candidates):
        picked[next(f for f, t in c.items() if t == d)] += len(d)
    assert disk["tokens"]["per_format"] == dict(picked)
    first_pos = df["position_ids"].to_list()[0]
    assert first_pos[0] == 0 and first_pos[1] == 1
    # the trainer's reader
    import datasets

    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in packed], split="train")
    assert len(ds) == info["num_blocks"] and len(ds[0]["input_ids"]) == 64


# --- end to end on speech -------------------------------------------------------------------------
def test_aligned_speech_interleaves_end_to_end(spm_dir):
    """espeak-ng words -> pocketsphinx alignment -> 50 Hz units -> interleaved tokens -> decoded words."""
    from slmfactory.stages.align import AlignStage

    u = gen.words_with_silences(gen.SENTENCES[0].split())
    aligned = AlignStage()({"id": ["e2e"], "audio": [u.wav], "text": [u.text]})
    units, durs = fake_units(len(u.wav) / 16000, dedup=True)
    aligned.update({"units": [units], "unit_durations": [durs], "unit_rate_hz": [RATE]})
    out = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, mixture={"interleaved": 1.0}, mode="span",
                          min_span=2, max_span=3)(aligned)
    assert out["error"] == [None] and out["format"] == ["interleaved"]
    tok, vocab, _ = make_vocab(str(spm_dir), K)
    dec = decode_sequence(out["tokens"][0], vocab, tok)
    kinds = [k for k, _ in dec]
    assert "text" in kinds and "speech" in kinds
    text_words = " ".join(p for k, p in dec if k == "text").split()
    assert all(w in u.text.split() for w in text_words)
    speech = [x for k, p in dec if k == "speech" for x in p]
    assert all(0 <= x < K for x in speech)


def test_mixture_is_honoured_per_token_whatever_the_sharding(spm_dir, tmp_path):
    """200 rows with 50 Hz units (speech ~10x longer than its text): per-row draws by share would give text
    well under half its configured tokens; the packed token shares land within 0.03 of the mixture, and the
    same rows written as 1 or 3 shards pack to the same blocks and the same counts."""
    rows = unit_rows(200, dedup=False)
    mixture = {"text": 0.2, "interleaved": 0.54, "speech": 0.25}
    out = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, seed=3, mixture=mixture)(columns(rows))
    out.pop("error"), out.pop("error_stage")
    length = Counter()
    for f, t, af, at in zip(out["format"], out["tokens"], out["alt_formats"], out["alt_tokens"]):
        length[f] += len(t)
        for a, b in zip(af, at):
            length[a] += len(b)
    per_row = {f: w * length[f] / sum(v * length[g] for g, v in mixture.items()) for f, w in mixture.items()}
    assert per_row["text"] < 0.1  # what drawing formats per row would give
    import polars as pl

    packed = []
    for n, cuts in enumerate([(0, 200), (0, 64, 128, 200), (0, 1, 151, 200)]):
        run = tmp_path / f"run{n}"
        (run / "manifest").mkdir(parents=True)
        for s, (a, b) in enumerate(zip(cuts, cuts[1:])):
            part = {k: v[a:b] for k, v in out.items()}
            pq.write_table(table_from_rows(part), run / "manifest" / f"shard-{s:05d}.parquet")
        info = pack_shards(Ctx(run), text_tokenizer=str(spm_dir), num_units=K, context_length=512, quiet=True,
                           mixture=mixture)
        total = sum(mixture.values())
        for f, w in mixture.items():
            assert abs(info["formats"][f]["token_share"] - w / total) <= 0.03, info["formats"]
            assert info["formats"][f]["configured_share"] == pytest.approx(w / total)
        df = pl.read_parquet(str(run / "packed" / "*.parquet"))
        packed.append((df["input_ids"].to_list(), df["position_ids"].to_list(), info["formats"], info["tokens"]))
    assert packed[0] == packed[1] == packed[2]


def test_mixture_key_order_does_not_change_choices(spm_dir):
    """Recipes reach workers as sorted JSON: the same mixture written in another order gives the same rows."""
    rows = columns(unit_rows(60))
    a = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, mixture={"text": 0.2, "interleaved": 0.54, "speech": 0.25})(rows)
    b = InterleaveStage(text_tokenizer=str(spm_dir), num_units=K, mixture={"speech": 0.25, "interleaved": 0.54, "text": 0.2})(rows)
    assert a["format"] == b["format"]


def test_inspect_shows_words_with_unit_runs(spm_dir):
    """describe() prints token counts per format and decodes an interleaved row: text runs and unit runs
    labelled with the words they were spoken for."""
    from rich.console import Console

    from slmfactory.stages.inspect import describe

    rows = unit_rows(5)
    params = {"text_tokenizer": str(spm_dir), "num_units": K, "mixture": {"interleaved": 1.0}, "mode": "random"}
    out = InterleaveStage(**params)(columns(rows))
    out.pop("error"), out.pop("error_stage")
    con = Console(record=True, width=200)
    describe(table_from_rows(out), con, params=params)
    text = con.export_text()
    assert "interleaved" in text and "[SPEECH] (" in text and "units:" in text and "[TEXT] " in text
    first = rows[0]["words"]
    # every word of the first row appears once, in order, across the decoded runs
    decoded_words = []
    for line in text.splitlines():
        if "[SPEECH] (" in line:
            decoded_words.append(("s", line.split("(", 1)[1].split(")", 1)[0].split()))
        elif "[TEXT] " in line:
            decoded_words.append(("t", line.split("[TEXT] ", 1)[1].split()))
    assert [w for _, ws in decoded_words for w in ws] == [w["word"] for w in first]
