"""Corpus recipes: layouts, laziness, determinism, and bad inputs yielded as rejected rows (never dropped).

No models here; every corpus is generated at test time with espeak-ng (slmfactory.manifests.generate) or
written by the test (JSONL, Lhotse manifests, HF datasets built from the generated audio).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from slmfactory.manifests import discovery, generate
from slmfactory.manifests.corpora import describe_kinds, discover, discover_input
from slmfactory.manifests.registry import CORPORA, UnknownName

pytestmark = pytest.mark.skipif(not generate.have_espeak(), reason="espeak-ng is needed to generate test audio")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    generate.make_librispeech(root / "ls", speakers=2, chapters=1, utts=3)
    generate.make_librilight(root / "ll", speakers=2, books=1, files=2, sentences=2)
    generate.make_podcasts(root / "pc", episodes=2, sentences=2)
    generate.make_folder(root / "fo", n=4)
    generate.make_bad_corpus(root / "bad")
    return root


def _good(items):
    return [i for i in items if not i.get("error")]


def _bad(items):
    return [i for i in items if i.get("error")]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- registry ---------------------------------------------------------------------------------------
def test_kinds_registry_and_unknown_kind():
    shipped = {"librilight", "librispeech", "podcasts", "folder", "jsonl", "lhotse", "hf", "manifest"}
    assert shipped <= set(CORPORA.names())  # never the exact set: adding a kind is one module + one test
    for kind in CORPORA.names():
        assert CORPORA.load(kind).name == kind
        assert CORPORA.load(kind).__doc__ and len(CORPORA.load(kind).__doc__.strip()) > 40, kind
    assert "librispeech:" in describe_kinds()
    with pytest.raises(ValueError, match="unknown corpus kind 'nope'.*Known: .*folder, hf"):
        list(discover("nope", "/tmp"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list(discover("folder", "/definitely/not/here"))


def test_typo_kind_says_did_you_mean():
    with pytest.raises(UnknownName, match="Did you mean 'librispeech'"):
        discover("librispeach", "/tmp")
    with pytest.raises(ValueError, match="Did you mean 'podcasts'"):
        list(discover_input({"kind": "podcast", "root": "/tmp"}))


def test_manifest_kind_reads_an_earlier_run(tmp_path):
    (tmp_path / "manifest").mkdir()
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "manifest" / "shard-00000.parquet")
    assert list(discover_input({"kind": "manifest", "path": str(tmp_path), "root": "ignored"})) == rows
    assert list(discover("manifest", tmp_path / "manifest")) == rows
    with pytest.raises(FileNotFoundError, match="no Parquet manifest"):
        list(discover_input({"kind": "manifest", "path": str(tmp_path / "none")}))
    with pytest.raises(ValueError, match="needs a 'root'"):
        list(discover_input({"kind": "folder"}))


# --- LibriSpeech -------------------------------------------------------------------------------------
def test_librispeech_items_text_as_is_and_deterministic(corpora):
    items = list(discover("librispeech", corpora / "ls"))
    assert len(items) == 6 and not _bad(items)
    truth = {}
    for t in sorted((corpora / "ls").rglob("*.trans.txt")):
        for line in t.read_text().splitlines():
            uid, text = line.split(" ", 1)
            truth[uid] = text
    for it in items:
        uid = Path(it["audio_path"]).stem
        assert os.path.isabs(it["audio_path"]) and os.path.exists(it["audio_path"])
        assert it["text"] == truth[uid]  # upper case, kept as-is
        assert it["speaker"] == uid.split("-")[0]
        assert it["id"].startswith(uid + "_00000000_")
        assert json.loads(it["meta"])["chapter"] == uid.split("-")[1]
        assert it["source"] == "librispeech" and it["start"] is None and it["_spans"] is None
    assert len({i["id"] for i in items}) == 6
    assert items == list(discover("librispeech", corpora / "ls"))
    assert [Path(i["audio_path"]).stem for i in items] == sorted(truth)


def test_librispeech_bad_lines_are_rejected_not_dropped(corpora, tmp_path):
    root = _copy(corpora / "ls", tmp_path / "ls")
    chap = root / "100" / "2000"
    (chap / "100-2000-0001.flac").unlink()  # a transcript line whose audio is missing
    trans = chap / "100-2000.trans.txt"
    extra = generate.sentence("a stray file").wav
    sf.write(str(chap / "100-2000-0009.flac"), extra, 16000)  # audio no line names
    sf.write(str(chap / "100-2000-0007.flac"), extra, 16000)
    sf.write(str(chap / "100-2000-0008.flac"), extra, 16000)
    trans.write_bytes(trans.read_bytes() + b"\n100-2000-0007 CAF\xc9 LATIN ONE\n100-2000-0008\n")
    items = list(discover("librispeech", root))
    by_uid = {json.loads(i["meta"])["utterance"]: i for i in items}
    assert set(by_uid) == {f"100-2000-{u:04d}" for u in (0, 1, 2, 7, 8, 9)} | {f"101-2000-{u:04d}" for u in range(3)}
    missing = by_uid["100-2000-0001"]
    assert missing["error_stage"] == "discover" and "no audio file 100-2000-0001.flac" in missing["error"]
    assert missing["_input"].endswith("100-2000.trans.txt:2")
    assert "not UTF-8 (byte 0xc9" in by_uid["100-2000-0007"]["error"]
    assert "iconv" in by_uid["100-2000-0007"]["error"]
    assert "no transcript text" in by_uid["100-2000-0008"]["error"]
    stray = by_uid["100-2000-0009"]
    assert not stray.get("error") and stray["text"] is None


# --- LibriLight ----------------------------------------------------------------------------------------
def test_librilight_spans_speaker_and_book_meta(corpora):
    items = list(discover("librilight", corpora / "ll"))
    assert len(items) == 4 and not _bad(items)
    for it in items:
        side = json.loads(Path(it["audio_path"]).with_suffix(".json").read_text())
        assert it["_spans"] == side["voice_activity"]
        assert it["speaker"] == side["speaker"] == Path(it["audio_path"]).parent.parent.name
        meta = json.loads(it["meta"])
        assert meta["book_title"] == side["book_meta"]["title"] and meta["book_authors"] == ["Anon"]
        assert meta["snr"] == 20.0 and meta["book"] == "book_00"
    assert all(i["_spans"] is None for i in discover("librilight", corpora / "ll", use_spans=False))


def test_librilight_missing_and_broken_json(corpora, tmp_path):
    root = _copy(corpora / "ll", tmp_path / "ll")
    files = sorted(root.rglob("*.flac"))
    files[0].with_suffix(".json").unlink()  # no sidecar: kept, VAD will segment
    files[1].with_suffix(".json").write_text("{not json")
    bad_spans = json.loads(files[2].with_suffix(".json").read_text())
    bad_spans["voice_activity"] = [[2.0, 1.0]]
    files[2].with_suffix(".json").write_text(json.dumps(bad_spans))
    items = {i["audio_path"]: i for i in discover("librilight", root)}
    assert len(items) == 4
    a = items[str(files[0])]
    assert not a.get("error") and a["_spans"] is None and a["speaker"] == files[0].parent.parent.name
    assert "not valid JSON" in items[str(files[1])]["error"]
    assert str(files[1].with_suffix(".json")) in items[str(files[1])]["error"]
    assert "voice_activity[0]" in items[str(files[2])]["error"]
    assert not items[str(files[3])].get("error")


# --- podcasts ----------------------------------------------------------------------------------------
RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
<title>Feed Show</title>
<item><title>First from feed</title><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate>
<enclosure url="https://cdn.example.org/audio/episode_00.mp3?x=1" type="audio/mpeg" length="1"/>
<itunes:duration>00:00:20</itunes:duration></item>
<item><title>Not downloaded</title><enclosure url="https://cdn.example.org/audio/other.mp3"/></item>
</channel></rss>"""


def test_podcasts_json_and_rss_metadata(corpora, tmp_path):
    root = _copy(corpora / "pc", tmp_path / "pc")
    (root / "feed.xml").write_text(RSS)
    sub = root / "season2"
    sub.mkdir()
    shutil.copy(root / "episode_01.wav", sub / "other.wav")  # matched by stem to the root feed's other.mp3
    shutil.copy(root / "episode_01.wav", sub / "bonus.wav")  # in no feed, no JSON
    items = list(discover("podcasts", root))
    assert [Path(i["audio_path"]).name for i in items] == ["episode_00.mp3", "episode_01.wav", "bonus.wav", "other.wav"]
    assert not _bad(items)
    m0, m1, m2, m3 = (json.loads(i["meta"]) for i in items)
    assert m0["title"] == "Episode 0"  # per-episode JSON overrides the feed's title
    assert m0["pub_date"].startswith("Mon, 01 Jan 2024") and m0["rss_duration"] == "00:00:20"
    assert m0["show"] == "Test Show"
    assert "pub_date" not in m1 and m1["title"] == "Episode 1"
    assert m2 == {"episode": "bonus"}
    assert m3["title"] == "Not downloaded" and m3["show"] == "Feed Show"  # feeds apply to subfolders
    assert items[3]["id"].startswith("season2-other_")
    assert all(i["start"] is None and i["duration"] is None for i in items)


def test_podcasts_broken_feed_and_episode_json(corpora, tmp_path):
    root = _copy(corpora / "pc", tmp_path / "pc")
    (root / "feed.rss").write_text("<rss><channel><item>")
    (root / "episode_01.json").write_text("[1, 2]")
    items = list(discover("podcasts", root))
    bad = {Path(i["_input"]).name: i["error"] for i in _bad(items)}
    assert set(bad) == {"feed.rss", "episode_01.wav"}
    assert "not a readable RSS feed" in bad["feed.rss"]
    assert "episode_01.json" in bad["episode_01.wav"] and "JSON object" in bad["episode_01.wav"]
    assert [Path(i["audio_path"]).name for i in _good(items)] == ["episode_00.mp3"]


# --- folder ------------------------------------------------------------------------------------------
def test_folder_transcripts(corpora):
    items = list(discover("folder", corpora / "fo", speaker_from_dir=True))
    assert len(items) == 4 and not _bad(items)
    for it in items:
        assert it["text"] == Path(it["audio_path"]).with_suffix(".txt").read_text().strip()
        assert it["speaker"] == Path(it["audio_path"]).parent.name
    assert [json.loads(i["meta"])["relpath"] for i in items] == sorted(json.loads(i["meta"])["relpath"] for i in items)


def test_bad_corpus_every_input_accounted_for(corpora):
    items = list(discover("folder", corpora / "bad"))
    names = [Path(i["_input"]).name for i in items]
    expected = sorted(p.name for p in (corpora / "bad").iterdir() if discovery.is_audio(p.name)) + ["bad_orphan.txt"]
    assert sorted(names) == sorted(expected)
    bad = {Path(i["_input"]).name: i["error"] for i in _bad(items)}
    assert set(bad) == {"bad_latin1.wav", "bad_orphan.txt"}  # the others fail at decode, not discovery
    assert "not UTF-8 (byte 0xe9 at 3)" in bad["bad_latin1.wav"] and "iconv -f latin1 -t utf-8" in bad["bad_latin1.wav"]
    assert "transcript has no audio file bad_orphan.wav" in bad["bad_orphan.txt"]
    good = {Path(i["audio_path"]).name: i for i in _good(items)}
    assert good["good_no_transcript.wav"]["text"] is None
    assert good["good_plain.wav"]["text"] == generate.SENTENCES[0]
    assert len({i["id"] for i in items}) == len(items)


def test_discovery_is_lazy(tmp_path, monkeypatch):
    """The first item arrives after listing only the directories on the path to it, not the whole tree."""
    wav = generate.sentence("hello").wav
    for s in range(5):
        for b in range(4):
            d = tmp_path / "c" / str(s) / str(b)
            d.mkdir(parents=True)
            sf.write(str(d / "x.flac"), wav, 16000)
    calls = []
    real = os.scandir
    monkeypatch.setattr(discovery.os, "scandir", lambda p: calls.append(p) or real(p))
    gen = discover("librilight", tmp_path / "c")
    assert calls == []  # nothing listed before iteration starts
    first = next(gen)
    assert first["audio_path"].endswith(os.path.join("c", "0", "0", "x.flac"))
    assert len(calls) == 3  # root, 0, 0/0 -- not the 26 folders of the tree
    assert len(list(gen)) == 19 and len(calls) == 26


# --- JSONL -------------------------------------------------------------------------------------------
def test_jsonl_fields_relative_paths_and_bad_lines(corpora, tmp_path):
    audio = sorted((corpora / "fo").rglob("*.wav"))
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(audio[0], d / "a.wav")
    lines = [
        json.dumps({"audio_path": "a.wav", "text": "hi", "speaker": 7, "start": 0.5, "duration": 1.0, "lang": "en"}),
        json.dumps({"audio_path": str(audio[1]), "id": "utt-b", "messages": [{"role": "user"}], "task": "qa"}),
        json.dumps({"text": "a text-only instruction row", "task": "qa"}),
        "",
        "{broken json",
        json.dumps([1, 2]),
        json.dumps({"audio_path": "a.wav", "duration": -1}),
        json.dumps({"audio_path": "missing.wav"}),
        json.dumps({"audio_path": "a.wav", "text": ["not", "a", "string"]}),
    ]
    (d / "train.jsonl").write_text("\n".join(lines) + "\n")
    items = list(discover("jsonl", d / "train.jsonl", keep=["task"]))
    assert len(items) == 8  # one per non-blank line
    a, b, t = items[:3]
    assert a["audio_path"] == str(d / "a.wav") and a["start"] == 0.5 and a["duration"] == 1.0
    assert a["speaker"] == "7" and a["text"] == "hi" and json.loads(a["meta"]) == {"lang": "en"}
    assert a["id"].startswith("train-000001_00000500_")
    assert b["id"].startswith("utt-b_") and b["task"] == "qa" and b["start"] is None
    assert json.loads(b["meta"])["messages"] == [{"role": "user"}] and json.loads(b["meta"])["orig_id"] == "utt-b"
    assert t["audio_path"] is None and t["text"] == "a text-only instruction row" and not t.get("error")
    errs = [i["error"] for i in items[3:]]
    assert all(i["_input"].startswith(str(d / "train.jsonl") + ":") for i in items[3:])
    assert "train.jsonl:5: not valid JSON" in errs[0]
    assert "expected a non-empty JSON object, got list" in errs[1]
    assert "duration must be a number of seconds (> 0), got -1" in errs[2]
    assert "missing.wav not found" in errs[3]
    assert "text must be a string" in errs[4]
    # a folder of gzip'ed JSONL works the same
    with gzip.open(d / "more.jsonl.gz", "wt") as f:
        f.write(lines[0] + "\n")
    both = list(discover("jsonl", d))
    assert len(both) == 9 and both[0]["text"] == "hi"
    with pytest.raises(ValueError, match="already columns"):
        list(discover("jsonl", d, keep=["speaker"]))


# --- Lhotse import -----------------------------------------------------------------------------------
def _write_jsonl_gz(path: Path, objs: list[dict]) -> None:
    with gzip.open(path, "wt") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")


def test_lhotse_import_recordings_supervisions_cuts(corpora, tmp_path):
    audio = sorted((corpora / "fo").rglob("*.wav"))
    d = tmp_path / "lh"
    d.mkdir()
    shutil.copy(audio[0], d / "r1.wav")
    info = sf.info(str(d / "r1.wav"))
    rec = lambda rid, src, typ="file": {"id": rid, "sources": [{"type": typ, "channels": [0], "source": src}],  # noqa: E731
                                        "sampling_rate": 16000, "num_samples": info.frames,
                                        "duration": info.frames / 16000}
    _write_jsonl_gz(d / "c_recordings_dev.jsonl.gz",
                    [rec("r1", "r1.wav"), rec("r2", str(audio[1])), rec("r3", "https://x/y.wav", "url")])
    _write_jsonl_gz(d / "c_supervisions_dev.jsonl.gz", [
        {"id": "s1", "recording_id": "r1", "start": 0.2, "duration": 0.8, "channel": 0, "text": "hello",
         "speaker": "spk1", "language": "English", "custom": {"x": 1}},
        {"id": "s2", "recording_id": "r1", "start": 1.0, "duration": 0.5, "channel": 0, "text": "world"},
        {"id": "s3", "recording_id": "nope", "start": 0, "duration": 1},
        {"id": "s4", "recording_id": "r3", "start": 0, "duration": 1},
    ])
    cut_rec = {**rec("r2", str(audio[1]))}
    _write_jsonl_gz(d / "c_cuts_dev.jsonl.gz", [
        {"id": "cut1", "start": 0.1, "duration": 1.2, "channel": 0, "type": "MonoCut", "recording": cut_rec,
         "supervisions": [{"id": "b", "recording_id": "r2", "start": 0.6, "duration": 0.4, "text": "two", "speaker": "s"},
                          {"id": "a", "recording_id": "r2", "start": 0.0, "duration": 0.5, "text": "one", "speaker": "s"}]},
        {"id": "mix", "type": "MixedCut", "tracks": []},
    ])
    items = list(discover("lhotse", d, allow_outside_root=True))  # r2 and cut1 point outside d
    by = {json.loads(i["meta"]).get("lhotse_id"): i for i in items}
    s1 = by["s1"]
    assert s1["audio_path"] == str(d / "r1.wav") and (s1["start"], s1["duration"]) == (0.2, 0.8)
    assert s1["text"] == "hello" and s1["speaker"] == "spk1" and json.loads(s1["meta"])["language"] == "English"
    assert s1["source"] == "lhotse" and s1["id"].startswith("s1_00000200_")
    assert "no recordings manifest here defines" in by["s3"]["error"]
    assert "'url' source" in by["s4"]["error"]
    # r2 is named by no supervision: one whole-file item; r1 and r3 are covered by their supervisions
    assert by["r2"]["start"] is None and by["r2"]["text"] is None and not by["r2"].get("error")
    assert set(by) == {"s1", "s2", "s3", "s4", "r2"}  # auto: supervisions win over the cuts file
    # use="cuts": the supervisions file is left aside; r2 is now covered by cut1, r1/r3 become whole files
    cuts = discover("lhotse", d, use="cuts", allow_outside_root=True)
    cuts_only = {json.loads(i["meta"]).get("lhotse_id"): i for i in cuts}
    assert set(cuts_only) == {"cut1", "mix", "r1", "r3"}
    c = cuts_only["cut1"]
    assert c["text"] == "one two" and c["speaker"] == "s" and (c["start"], c["duration"]) == (0.1, 1.2)
    assert c["audio_path"] == str(audio[1])
    assert "only MonoCuts" in cuts_only["mix"]["error"]
    assert cuts_only["r1"]["start"] is None and "'url' source" in cuts_only["r3"]["error"]


# --- HF import ---------------------------------------------------------------------------------------
def test_hf_import_save_to_disk_parquet_and_paths(corpora, tmp_path):
    import datasets

    audio = sorted((corpora / "fo").rglob("*.wav"))[:2]
    blobs = [p.read_bytes() for p in audio]
    ds = datasets.Dataset.from_dict(
        {"audio": [{"bytes": b, "path": None} for b in blobs], "sentence": ["one", "two"], "speaker_id": ["a", "b"],
         "age": [30, 40], "id": ["x1", "x2"]},
        features=datasets.Features({"audio": datasets.Audio(), "sentence": datasets.Value("string"),
                                    "speaker_id": datasets.Value("string"), "age": datasets.Value("int32"),
                                    "id": datasets.Value("string")}))
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    ext = tmp_path / "extract"
    items = list(discover("hf", tmp_path / "dd", extract_dir=str(ext)))
    assert [json.loads(i["meta"])["split"] for i in items] == ["test", "train", "train"]
    for it, blob in zip(items[1:], blobs):
        assert Path(it["audio_path"]).read_bytes() == blob and it["audio_path"].endswith(".wav")
    assert [i["text"] for i in items] == ["two", "one", "two"] and items[1]["speaker"] == "a"
    assert json.loads(items[1]["meta"])["age"] == 30 and items[1]["id"].startswith("x1_")
    mtime = os.path.getmtime(items[1]["audio_path"])
    assert list(discover("hf", tmp_path / "dd", extract_dir=str(ext), split="train")) == items[1:]
    assert os.path.getmtime(items[1]["audio_path"]) == mtime  # extracted once, not rewritten
    # a parquet file with a relative path column, a text-only row and a missing file
    shutil.copy(audio[0], tmp_path / "rel.wav")
    pq.write_table(pa.table({"path": ["rel.wav", None, "gone.wav"], "text": ["p", "text only", "q"]}),
                   tmp_path / "t.parquet")
    rows = list(discover("hf", tmp_path / "t.parquet"))
    assert rows[0]["audio_path"] == str(tmp_path / "rel.wav") and rows[0]["text"] == "p"
    assert rows[1]["audio_path"] is None and rows[1]["text"] == "text only"
    assert "gone.wav not found" in rows[2]["error"]


# --- round trip ------------------------------------------------------------------------------------
def test_lhotse_export_then_import_round_trip(corpora, tmp_path):
    from slmfactory.manifests.lhotse_export import export_lhotse

    src = list(discover("librispeech", corpora / "ls"))
    rows = [{**i, "start": 0.1, "duration": 0.9} for i in src]
    summary = export_lhotse(rows, str(tmp_path / "lh"))
    assert summary["num_recordings"] == 6 and summary["num_supervisions"] == 6 and not summary["skipped"]
    back = list(discover("lhotse", tmp_path / "lh", allow_outside_root=True))  # sources: the corpus elsewhere
    assert [(b["audio_path"], b["start"], b["duration"], b["text"], b["speaker"]) for b in back] == \
        [(r["audio_path"], 0.1, 0.9, r["text"], r["speaker"]) for r in rows]
    assert [json.loads(b["meta"])["lhotse_id"] for b in back] == [r["id"] for r in rows]


def test_folder_symlink_loop_and_upper_case_transcript(corpora, tmp_path):
    root = _copy(corpora / "fo", tmp_path / "fo")
    os.symlink(root, root / "dir0" / "loop")  # a link back up the tree must not loop forever
    wav = next((root / "dir1").glob("*.wav"))
    txt = wav.with_suffix(".txt")
    txt.rename(wav.with_suffix(".TXT"))
    items = list(discover("folder", root))
    assert len(items) == 4 and not _bad(items)
    assert {i["audio_path"]: i["text"] for i in items}[str(wav)] == wav.with_suffix(".TXT").read_text().strip()
