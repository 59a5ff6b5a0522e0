"""Spoken benchmarks: pair generation, the spoken_bench recipe end to end, scoring, n-gram baselines, loaders.

Real pieces: the CMU dictionary pocketsphinx ships, the bundled Piper voice (both members of a pair spoken
through it), the spectral tokenizer with k-means fitted here on espeak-ng speech. The model is a tiny
RANDOMLY initialised ``LlamaForCausalLM`` saved to tmp_path with a ``speech_lm.json``; its accuracies are
not meaningful, only the scorer's arithmetic is checked (against Hugging Face's own loss).
"""
from __future__ import annotations

import io
import json
import wave

import pytest

from slmfactory.manifests import generate as gen

WORDS = ["water", "garden", "window", "river", "paper", "little", "market", "table", "summer", "number",
         "people", "money", "happy", "basket", "letter", "doctor", "silver", "yellow", "pocket", "finger"]


@pytest.fixture(scope="module")
def lex():
    from slmfactory.slm.phones import load_lexicon

    return load_lexicon()


def test_pairs_are_legal_non_words_and_deterministic(lex):
    from slmfactory.slm import pairs as P

    a = list(P.lexical_pairs(12, seed=0, words=WORDS, lex=lex))
    assert a == list(P.lexical_pairs(12, seed=0, words=WORDS, lex=lex))
    assert a != list(P.lexical_pairs(12, seed=1, words=WORDS, lex=lex))
    for p in a:
        word, neg = p["positive_phones"].split(), p["negative_phones"].split()
        assert tuple(word) == lex.words[p["positive_word"]]
        assert not lex.is_word(neg) and lex.is_word(word)          # a non-word, and no homophone of a word
        assert lex.legal(neg)                                     # every phone bigram seen in the dictionary
        assert sum(x != y for x, y in zip(word, neg)) == 1 and len(word) == len(neg)
        assert p["positive_text"].startswith("[[") and p["positive_text"] != p["negative_text"]
    assert not lex.legal(("NG", "AE", "T"))                       # the check can say no: no English word starts with NG
    syn = list(P.syntactic_pairs(16, seed=0))
    assert syn == list(P.syntactic_pairs(16, seed=0)) and len({p["paradigm"] for p in syn}) == 8
    assert all(p["positive_text"] != p["negative_text"] for p in syn)
    assert all(len(p["positive_text"].split()) == len(p["negative_text"].split()) for p in syn)
    story = list(P.story_pairs(4, seed=0))
    for p in story:  # same context, different ending
        assert p["positive_text"].rsplit(".", 2)[0] == p["negative_text"].rsplit(".", 2)[0]
        assert p["positive_text"] != p["negative_text"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory, lex, require_espeak):
    """2 lexical + 1 syntactic pair spoken by Piper and tokenized by the spectral tokenizer (6 short clips)."""
    from rich.console import Console

    from slmfactory.pipelines.runner import run_recipe
    from slmfactory.slm import pairs as P
    from slmfactory.tokenize import kmeans as km
    from slmfactory.tokenize.factory import build_features

    tmp = tmp_path_factory.mktemp("bench")
    feats = km.collect_features(build_features("spectral"), [gen.sentence(gen.SENTENCES[0]).wav])
    km.train(feats, 16, niter=5).save(tmp / "km" / "spectral-k16")  # any codebook: the test checks consistency
    rows = list(P.lexical_pairs(2, 0, words=WORDS, lex=lex)) + list(P.syntactic_pairs(1, 0))
    for r in rows:
        r["voice"] = P.DEFAULT_VOICE
    P.write_pairs(rows, tmp / "pairs.jsonl")
    res = run_recipe("spoken_bench", {"pairs": str(tmp / "pairs.jsonl"), "out": str(tmp / "out"),
                                      "kmeans": str(tmp / "km" / "spectral-k16")},
                     executor="local", console=Console(file=io.StringIO()))
    assert res.rows == 2 * len(rows) and res.errors == 0
    return tmp, rows


@pytest.fixture(scope="module")
def tiny_model(bench):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from slmfactory.stages.interleave import Vocab

    tmp, _ = bench
    vocab = Vocab(40, 16)
    info = {**vocab.info(), "text_tokenizer": None, "unit_tokenizer": None, "context_length": 512}
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024))
    m.save_pretrained(tmp / "model")
    (tmp / "model" / "speech_lm.json").write_text(json.dumps({**info, "init": "cold", "config": {}}))
    return tmp / "model", vocab, info


def test_recipe_speaks_pairs_with_one_voice_and_tokenizes_like_training(bench):
    import numpy as np

    from slmfactory.slm.score import read_bench
    from slmfactory.tokenize.stage import TokenizeStage

    tmp, rows = bench
    pairs, notes = read_bench(tmp / "out")
    assert sorted(p.pair_id for p in pairs) == sorted(r["pair_id"] for r in rows)
    assert notes["incomplete_pairs"] == [] and notes["voice_mismatch"] == []
    assert all(p.positive and p.negative and p.positive != p.negative for p in pairs)
    assert all(t.endswith("+dedup") for t in notes["tokenizers"])
    import pyarrow.dataset as ds

    m = ds.dataset(str(tmp / "out" / "manifest")).to_table().to_pylist()
    assert {r["voice"] for r in m} == {"en_US-joe-medium"} and {r["role"] for r in m} == {"positive", "negative"}
    # the same clip through the training recipe's tokenize stage gives the same units
    stage = TokenizeStage(tokenizer="spectral", kmeans=str(tmp / "km" / "spectral-k16"), dedup=True)
    again = stage([{"id": "x", "audio_path": m[0]["audio_path"]}])[0]
    assert np.array_equal(again["units"], m[0]["units"])


def test_scoring_matches_hf_loss_and_options(bench, tiny_model):
    import torch

    from slmfactory.slm import score

    tmp, _ = bench
    model_dir, vocab, _ = tiny_model
    model, info = score.load_model(model_dir)
    pairs, _ = score.read_bench(tmp / "out")
    seqs = [score.speech_sequence(u, vocab) for p in pairs for u in (p.positive, p.negative)]
    assert all(s[0] == vocab.speech_id and min(s[1:]) >= vocab.unit_offset for s in seqs)
    batched = score.mean_nll(model, seqs, score.ScoreConfig(batch_tokens=10_000))
    single = score.mean_nll(model, seqs, score.ScoreConfig(batch_tokens=1))
    assert batched == pytest.approx(single, abs=1e-4)  # padding never changes a score
    with torch.no_grad():
        ref = float(model(torch.tensor([seqs[0]]), labels=torch.tensor([seqs[0]])).loss)
    assert batched[0] == pytest.approx(ref, abs=1e-4)
    restricted = score.mean_nll(model, seqs, score.ScoreConfig(restrict=True), vocab)
    assert all(r < b for r, b in zip(restricted, batched))  # a smaller normaliser: lower NLL
    # the restricted scorer computes only the allowed logits; it must equal the full logits' restricted softmax
    allowed = torch.tensor(score.allowed_ids(vocab))
    with torch.no_grad():
        lg = model(torch.tensor([seqs[1]])).logits[0, :-1].index_select(-1, allowed)
    tgt = torch.tensor([score.allowed_ids(vocab).index(t) for t in seqs[1][1:]])
    ref = float(-torch.log_softmax(lg, -1).gather(1, tgt[:, None]).mean())
    assert restricted[1] == pytest.approx(ref, abs=1e-4)
    ids, mask = torch.tensor([seqs[1]]), torch.ones(1, len(seqs[1]), dtype=torch.long)
    assert score.restricted_head(model, ids, mask, allowed) is not None
    assert score.restricted_head(model, ids, mask, allowed).__name__ == "fast"  # a Llama head is a plain linear map
    assert score.accuracy([1.0, 2.0, 3.0], [2.0, 1.0, 3.0]) == pytest.approx(0.5)  # win, loss, tie


def test_eval_cli_with_baselines_that_learn(bench, tiny_model):
    """A bigram fitted on packed data holding the positives prefers them; the model is printed beside."""
    from typer.testing import CliRunner

    from slmfactory.pipelines.cli import app
    from slmfactory.slm import baselines, score
    from slmfactory.stages.pack import _write, pack_tokens

    tmp, rows = bench
    model_dir, vocab, info = tiny_model
    pairs, _ = score.read_bench(tmp / "out")
    docs = [score.speech_sequence(p.positive, vocab) for p in pairs] * 2
    packed = tmp / "packed"
    packed.mkdir()
    _write(packed / "shard-00000.parquet", list(pack_tokens(docs, 64, vocab.eos_id, vocab.pad_id)))
    (packed / "dataset_info.json").write_text(json.dumps(info))
    fitted = baselines.fit(packed)
    assert fitted.tokens == sum(len(d) + 1 for d in docs)
    r = CliRunner().invoke(app, ["slm", "eval", str(model_dir), str(tmp / "out"), "--train-data", str(packed),
                                 "-o", str(tmp / "res.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp / "res.json").read_text())
    got = {k: v for k, v in res["kinds"].items()}
    assert set(got) == {"lexical", "syntactic"} and sum(v["pairs"] for v in got.values()) == len(rows)
    wins = sum(v["bigram"] * v["pairs"] for v in got.values()) / len(rows)
    assert wins > 0.75, got
    assert "bigram" in r.output and "lexical" in r.output
    ids = tmp / "ids.jsonl"  # the token-id JSONL input still works
    ids.write_text(json.dumps({"positive": [vocab.speech_id, vocab.unit_offset + 1, vocab.unit_offset + 2],
                               "negative": [vocab.speech_id, vocab.unit_offset + 3, vocab.unit_offset + 4]}) + "\n")
    r = CliRunner().invoke(app, ["slm", "eval", str(model_dir), str(ids)])
    assert r.exit_code == 0 and '"pairs": 1' in r.output, r.output


def _wav(path, seconds=0.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))


def test_published_layouts_load_into_the_pair_table(tmp_path):
    from slmfactory.manifests.spoken_pairs import SpokenPairs
    from slmfactory.slm.pairs import write_pairs
    from slmfactory.slm.published import published_pairs

    zr = tmp_path / "zr2021"
    lines = ["filename,word,phones,id,voice,frequency,length,correct"]
    for i, (f, word, ok) in enumerate([("aa", "brick", 1), ("ab", "brack", 0), ("ba", "stone", 1), ("bb", "stane", 0)]):
        _wav(zr / "lexical" / "dev" / f"{f}.wav")
        lines.append(f"{f},{word},x,{i // 2},Joey,3,5,{ok}")
    (zr / "lexical" / "dev" / "gold.csv").write_text("\n".join(lines) + "\n")
    sw = published_pairs("swuggy", zr)
    assert [(p["positive_text"], p["negative_text"]) for p in sw] == [("brick", "brack"), ("stone", "stane")]
    for name in ("0_correct", "0_incorrect", "1_incorrect", "1_correct"):
        _wav(tmp_path / "ssc" / f"{name}.wav")
    ssc = published_pairs("ssc", tmp_path / "ssc")
    assert all("incorrect" in p["negative_audio"] and "incorrect" not in p["positive_audio"] for p in ssc)
    write_pairs(sw, tmp_path / "sw.jsonl")
    items = list(SpokenPairs().discover(str(tmp_path / "sw.jsonl"), audio_root=str(zr)))
    assert len(items) == 4 and not any(i.get("error") for i in items)
    assert {i["role"] for i in items} == {"positive", "negative"} and all(i["audio_path"] for i in items)
    with pytest.raises(FileNotFoundError, match="gold.csv"):
        published_pairs("sblimp", zr)
