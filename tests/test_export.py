"""Export of a manifest to a Hugging Face folder (Parquet + DatasetCard, decodable Audio, `load_dataset(folder)`)
and to Lhotse (recordings, supervisions, a CutSet and Shar, loaded back with lhotse); manifest shards read by
`datasets` and polars.

No models: audio is generated with espeak-ng at test time (slmfactory.manifests.generate); manifests are
written with schema.table_from_rows like the runner's shards.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from slmfactory.manifests import generate
from slmfactory.manifests.corpora import discover
from slmfactory.manifests.export import export, manifest_files
from slmfactory.manifests.schema import table_from_rows
from slmfactory.manifests.audio import load_audio

pytestmark = pytest.mark.skipif(not generate.have_espeak(), reason="espeak-ng is needed to generate test audio")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder: manifest/ with two shards (segments of LibriSpeech files, a 48 kHz stereo file, a
    text-only row, a row whose file is gone) and errors/."""
    root = tmp_path_factory.mktemp("export")
    generate.make_librispeech(root / "ls", speakers=2, chapters=1, utts=2)
    items = list(discover("librispeech", root / "ls"))
    rows = []
    for k, it in enumerate(items):
        info = sf.info(it["audio_path"])
        rows.append({"id": it["id"], "audio_path": it["audio_path"], "start": 0.25, "duration": 1.0,
                     "sample_rate": info.samplerate, "num_channels": info.channels, "speaker": it["speaker"],
                     "text": it["text"], "source": "librispeech", "meta": it["meta"], "_seq": k,
                     "units": [k, k + 1, k + 2],
                     "words": [{"word": "w", "start": 0.1, "end": 0.3, "score": 0.9}]})
    st = generate.sentence(generate.SENTENCES[3]).wav
    st48 = np.stack([st, 0.5 * st], axis=1)
    import soxr
    st48 = soxr.resample(st48, 16000, 48000)
    sf.write(str(root / "stereo48.flac"), st48, 48000)
    rows2 = [
        {"id": "stereo", "audio_path": str(root / "stereo48.flac"), "start": 0.0, "duration": 0.5, "sample_rate": 48000,
         "num_channels": 2, "speaker": "z", "text": "stereo", "source": "folder", "meta": "{}", "_seq": 10,
         "units": [1], "words": None},
        {"id": "textonly", "audio_path": None, "start": None, "duration": None, "sample_rate": None, "num_channels": None,
         "speaker": None, "text": "an instruction", "source": "jsonl", "meta": "{}", "_seq": 11, "units": None,
         "words": None},
        {"id": "gone", "audio_path": str(root / "gone.wav"), "start": 0.0, "duration": 1.0, "sample_rate": 16000,
         "num_channels": 1, "speaker": "z", "text": "x", "source": "folder", "meta": "{}", "_seq": 12, "units": None,
         "words": None},
    ]
    (root / "run" / "manifest").mkdir(parents=True)
    pq.write_table(table_from_rows(rows), root / "run" / "manifest" / "shard-00000.parquet")
    pq.write_table(table_from_rows(rows2), root / "run" / "manifest" / "shard-00001.parquet")
    return root / "run"


def test_manifest_files_resolves_run_dir_manifest_dir_and_file(run_dir):
    shards = manifest_files(run_dir)
    assert [Path(s).name for s in shards] == ["shard-00000.parquet", "shard-00001.parquet"]
    assert manifest_files(run_dir / "manifest") == shards and manifest_files(shards[1]) == [shards[1]]
    with pytest.raises(FileNotFoundError, match="no Parquet manifest"):
        manifest_files(run_dir.parent / "ls")


def _load(folder: Path, tmp: Path):
    import datasets

    return datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp / "hf_cache"))


def test_export_hf_audio_decodes_to_the_segment(run_dir, tmp_path):
    from huggingface_hub import DatasetCard

    out = tmp_path / "hf"
    summary = export(run_dir, "hf", out)
    assert summary["num_rows"] == 6 and [i for i, _ in summary["skipped"]] == ["gone"]
    assert "file not found" in summary["skipped"][0][1]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "README.md", "train-00000.parquet", "train-00001.parquet"]  # the Hub layout, no save_to_disk files
    ds = _load(out, tmp_path)
    assert len(ds) == 6 and "_seq" not in ds.column_names and "audio" in ds.column_names
    assert ds.features["audio"].sampling_rate == 16000
    manifest = pq.read_table(manifest_files(run_dir)).to_pylist()
    by_id = {r["id"]: r for r in manifest}
    for ex in ds:
        row = by_id[ex["id"]]
        assert ex["text"] == row["text"] and ex["units"] == row["units"] and ex["meta"] == row["meta"]
        if row["audio_path"] is None:
            assert ex["audio"] is None
            continue
        samples = ex["audio"].get_all_samples()
        assert samples.sample_rate == 16000
        got = samples.data.numpy()
        assert got.shape[0] == 1  # mono
        want, _ = load_audio(row["audio_path"], row["start"], row["duration"])
        assert got.shape[1] == len(want) == int(round(row["duration"] * 16000))
        np.testing.assert_allclose(got[0], want, atol=2e-4)  # 16-bit FLAC quantization
        if ex["words"]:
            assert ex["words"][0]["word"] == "w"
    card = (out / "README.md").read_text()
    assert "| rows | 6 |" in card and "`gone`" in card and "librispeech (4)" in card
    data = DatasetCard.load(out / "README.md").data
    assert data.configs[0]["data_files"] == [{"split": "train", "path": "data/*.parquet"}]
    assert data.size_categories == ["n<1K"] and "other" in data.license  # corpus license unknown: said so
    info = data.dataset_info  # one config: a mapping
    assert info["splits"][0]["num_examples"] == 6
    assert {"name": "audio", "dtype": {"audio": {"sampling_rate": 16000}}} in info["features"]
    assert f"| hours of audio | {(4 * 1.0 + 0.5) / 3600:.3f} |" in card
    items = list(discover("hf", out))  # the hf input kind reads the card's default config back
    assert sorted(i["text"] for i in items) == sorted(ex["text"] for ex in ds)
    assert not any(i.get("error") for i in items) and sum(bool(i["audio_path"]) for i in items) == 5
    with pytest.raises(FileExistsError, match="not empty"):
        export(run_dir, "hf", out)


def test_export_hf_native_rate(run_dir, tmp_path):
    export(run_dir / "manifest" / "shard-00001.parquet", "hf", tmp_path / "hf", sampling_rate=None)
    ds = _load(tmp_path / "hf", tmp_path)
    assert ds.features["audio"].sampling_rate is None
    ex = ds[0]
    assert ex["id"] == "stereo"
    s = ex["audio"].get_all_samples()
    assert s.sample_rate == 48000 and s.data.shape == (1, 24000)


def test_manifest_shards_read_by_datasets_and_polars(run_dir, tmp_path, monkeypatch):
    import datasets
    import polars as pl

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    shards = manifest_files(run_dir)
    ds = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=str(tmp_path / "cache"))
    df = pl.read_parquet(shards)
    want = pq.read_table(shards).to_pylist()
    assert ds["id"] == df["id"].to_list() == [r["id"] for r in want]
    assert ds[0]["words"] == want[0]["words"] and df["words"][0].to_list() == want[0]["words"]
    assert df["units"].to_list() == [r["units"] for r in want]


def _read_gz(path: str) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def test_export_lhotse_format_and_determinism(run_dir, tmp_path):
    s1 = export(run_dir, "lhotse", tmp_path / "a")
    s2 = export(run_dir, "lhotse", tmp_path / "b")
    for key in ("recordings", "supervisions"):
        assert Path(s1[key]).read_bytes() == Path(s2[key]).read_bytes()  # byte-identical re-export
    assert s1["num_recordings"] == 5 and s1["num_supervisions"] == 5
    assert sorted(i for i, _ in s1["skipped"]) == ["gone", "textonly"]
    recs = {r["id"]: r for r in _read_gz(s1["recordings"])}
    sups = _read_gz(s1["supervisions"])
    manifest = {r["id"]: r for r in pq.read_table(manifest_files(run_dir)).to_pylist()}
    allowed_sup = {"id", "recording_id", "start", "duration", "channel", "text", "language", "speaker", "gender",
                   "custom", "alignment"}
    for sup in sups:
        assert set(sup) <= allowed_sup
        row = manifest[sup["id"]]
        rec = recs[sup["recording_id"]]
        assert rec["sources"][0]["source"] == row["audio_path"] and rec["sources"][0]["type"] == "file"
        info = sf.info(row["audio_path"])
        assert rec["sampling_rate"] == info.samplerate and rec["num_samples"] == info.frames
        assert abs(rec["duration"] - info.frames / info.samplerate) < 1e-9
        assert (sup["start"], sup["duration"], sup["text"]) == (row["start"], row["duration"], row["text"])
        assert sup["custom"]["source"] == row["source"]
        if row["words"]:
            assert sup["alignment"]["word"][0] == ["w", pytest.approx(row["start"] + 0.1), pytest.approx(0.2), 0.9]
        if row["num_channels"] == 2:
            assert sup["channel"] == [0, 1] and rec["channel_ids"] == [0, 1]
    with pytest.raises(ValueError, match="unknown export target"):
        export(run_dir, "kaldi", tmp_path / "c")
    assert not os.path.exists(tmp_path / "c")


def test_export_lhotse_cuts_and_shar_load_with_lhotse(run_dir, tmp_path):
    """The CutSet and the Shar export, read by lhotse itself: cut audio is the manifest segment."""
    from lhotse import CutSet

    s = export(run_dir, "lhotse-shar", tmp_path / "l", sampling_rate=16000)
    manifest = {r["id"]: r for r in pq.read_table(manifest_files(run_dir)).to_pylist()}
    cuts = CutSet.from_file(s["cuts"])
    assert sorted(c.id for c in cuts) == sorted(i for i in manifest if i not in ("gone", "textonly"))
    for cut in cuts:
        row = manifest[cut.id]
        assert (cut.start, cut.duration, cut.supervisions[0].text) == (row["start"], row["duration"], row["text"])
        assert cut.supervisions[0].start == 0.0 and cut.recording.sources[0].source == row["audio_path"]
        if row["words"]:  # alignment is relative to the cut, as lhotse keeps it
            assert cut.supervisions[0].alignment["word"][0].start == pytest.approx(0.1)
        if cut.id == "stereo":
            assert cut.num_channels == 2 and cut.sampling_rate == 48000
        else:
            want, _ = load_audio(row["audio_path"], row["start"], row["duration"])
            np.testing.assert_allclose(cut.load_audio()[0], want, atol=1e-4)
    shar = CutSet.from_shar(in_dir=str(tmp_path / "l" / "shar"))
    got = {c.id: c for c in shar}
    assert set(got) == {c.id for c in cuts} and all(p.startswith(str(tmp_path)) for p in s["shar"])
    one = got[next(i for i in got if i != "stereo")]
    row = manifest[one.id]
    audio = one.load_audio()
    assert one.sampling_rate == 16000 and audio.shape == (1, int(round(row["duration"] * 16000)))
    want, _ = load_audio(row["audio_path"], row["start"], row["duration"])
    np.testing.assert_allclose(audio[0], want, atol=2e-4)  # FLAC inside the tar
    assert got["stereo"].sampling_rate == 16000 and got["stereo"].load_audio().shape[-1] == 8000


def test_card_names_the_bundled_models_a_recipe_ran_with():
    """Whisper tiny.en is named when it transcribed or when its encoder made the units, not when a local model did."""
    from slmfactory.manifests.card import models_used

    def keys(*stages):
        return [b.key for b in models_used({"stages": list(stages)})]

    assert keys({"uses": "tokenize", "params": {"tokenizer": "whisper-encoder"}}) == ["whisper-tiny.en"]
    assert keys({"uses": "tokenize", "params": {"tokenizer": "whisper-encoder", "checkpoint": "/m/small"}}) == []
    assert keys({"uses": "tokenize", "params": {"tokenizer": "spectral"}}) == []
    assert keys({"uses": "asr", "params": {"backend": "whisper", "model_path": "/m/medium"}}) == []
    assert keys({"uses": "asr", "params": {"backend": "whisper", "model_path": None}}) == ["whisper-tiny.en"]
