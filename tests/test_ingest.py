"""Ingest end to end on generated corpora: bad input, VAD against known silences, output formats.

Audio: espeak-ng speech written by slmfactory.manifests.generate (known transcripts, known speech
spans). VAD: silero-vad's model shipped inside the package (no download).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from slmfactory.manifests.schema import ERROR_SCHEMA, validate_segments
from slmfactory.pipelines.runner import run_recipe
from slmfactory.manifests.audio import load_audio


@pytest.fixture(scope="module")
def bad_run(corpora, tmp_path_factory, ray_local):
    out = tmp_path_factory.mktemp("bad_run")
    res = run_recipe("ingest", {"kind": "folder", "root": str(corpora["bad"]), "out": str(out), "shard_size": 4})
    return res, out


def test_bad_input_never_crashes_and_never_loses_a_row(bad_run, corpora):
    res, out = bad_run
    files = sorted(p.name for p in Path(corpora["bad"]).iterdir())
    audio_like = [f for f in files if f.endswith((".wav", ".flac"))]
    orphans = [f for f in files if f.endswith(".txt") and f.rsplit(".", 1)[0] + ".wav" not in files]
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    err = pl.read_parquet(str(out / "errors" / "*.parquet"))
    assert res.inputs == len(audio_like) + len(orphans)
    assert res.inputs == man.height + err.height, "rows in must equal good rows + error rows"
    good_names = sorted(Path(p).name for p in man["audio_path"])
    assert good_names == sorted(f for f in audio_like if f.startswith("good_"))
    for row in err.iter_rows(named=True):
        name = Path(row["input"]).name
        assert name.startswith("bad_"), f"a good file was rejected: {row}"
        assert name.rsplit(".", 1)[0] in row["reason"], f"reason must name the file: {row['reason']}"
        assert row["stage"] in ("discover", "decode")
    rejected = {Path(r).name for r in err["input"]}
    assert {"bad_truncated.flac", "bad_empty.wav", "bad_not_audio.flac", "bad_orphan.txt", "bad_latin1.wav"} <= rejected
    assert "UTF-8" in err.filter(pl.col("input").str.ends_with("bad_latin1.wav"))["reason"][0]


def test_resampled_and_downmixed_rows_load_as_16k_mono(bad_run):
    _, out = bad_run
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    by_name = {Path(r["audio_path"]).name: r for r in man.iter_rows(named=True)}
    stereo, mulaw, plain = by_name["good_stereo_48k.flac"], by_name["good_mulaw_8k.wav"], by_name["good_plain.wav"]
    assert (stereo["sample_rate"], stereo["num_channels"]) == (48000, 2)
    assert (mulaw["sample_rate"], mulaw["num_channels"]) == (8000, 1)
    assert plain["text"] == "the birch canoe slid on the smooth planks"
    ref, _ = load_audio(plain["audio_path"])
    for row in (stereo, mulaw):
        wav, info = load_audio(row["audio_path"], row["start"], row["duration"])
        assert wav.ndim == 1 and wav.dtype == np.float32
        assert abs(len(wav) / 16000 - row["duration"]) < 0.01
        n = min(len(wav), len(ref))
        corr = np.corrcoef(wav[:n], ref[:n])[0, 1]
        assert corr > 0.8, f"{row['audio_path']} does not sound like the source sentence (corr {corr:.2f})"


def test_outputs_load_in_polars_datasets_and_validate(bad_run):
    import datasets

    _, out = bad_run
    files = sorted(str(p) for p in (out / "manifest").glob("*.parquet"))
    validate_segments(pq.read_table(files[0]))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert set(["id", "audio_path", "start", "duration", "text", "meta"]) <= set(ds.column_names)
    assert len(ds) == pl.read_parquet(files).height
    assert pq.read_schema(next((out / "errors").glob("*.parquet"))).equals(ERROR_SCHEMA)
    run = json.loads((out / "run.json").read_text())
    assert run["counts"]["rows"] == len(ds) and "ray" in run["versions"]


def test_vad_segments_follow_known_silences(corpora, tmp_path, ray_local):
    out = tmp_path / "pod"
    res = run_recipe("ingest", {"kind": "podcasts", "root": str(corpora["podcasts"]), "out": str(out),
                                "max_seconds": 8.0, "shard_size": 1})
    truth = json.loads((corpora["podcasts"] / "_truth.json").read_text())
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    assert res.errors == 0
    for episode, spans in truth.items():
        segs = man.filter(pl.col("audio_path").str.contains(episode)).sort("start")
        assert segs.height > 0
        assert (segs["duration"] <= 8.0 + 1e-6).all() and (segs["duration"] >= 1.0 - 1e-6).all()
        for s, e in spans:  # every spoken sentence lies inside one segment, boundaries within 250 ms
            inside = segs.filter((pl.col("start") <= s + 0.25) & (pl.col("start") + pl.col("duration") >= e - 0.25))
            assert inside.height == 1, f"{episode}: sentence {s}-{e} not inside exactly one segment"
            seg_start = inside["start"][0]
            assert abs(seg_start - s) < 0.25 or seg_start < s, (seg_start, s)
        # segments never start or end inside a sentence
        for st, du in zip(segs["start"], segs["duration"]):
            for s, e in spans:
                assert not (s + 0.15 < st < e - 0.15), f"segment starts mid-sentence at {st}"
                assert not (s + 0.15 < st + du < e - 0.15), f"segment ends mid-sentence at {st + du}"


def test_librilight_uses_voice_activity_spans(corpora, tmp_path):
    out = tmp_path / "ll"
    run_recipe("ingest", {"kind": "librilight", "root": str(corpora["librilight"]), "out": str(out),
                          "max_seconds": 6.0}, executor="local")
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    metas = [json.loads(m) for m in man["meta"]]
    assert man.height > 0 and all(m["vad"] == "known_spans" for m in metas)
    assert man["id"].n_unique() == man.height
    assert set(man["speaker"]) == {"300", "301"}
