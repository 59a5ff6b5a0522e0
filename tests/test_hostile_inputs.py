"""Hostile inputs: every input row becomes good rows or an error row naming it and the fix, whatever it holds.

A JSONL manifest of 50 lines (overflowing, non-finite, negative and huge start/duration, wrong types, nulls,
paths outside the manifest's folder, directories, FIFOs, escaping symlinks, garbage audio) and a folder
corpus (a FIFO, a folder named like a file, a non-UTF-8 file name, an escaping symlink) go through the
``ingest`` recipe (local executor): the run ends normally and inputs = good + error rows, line by line.

Audio: espeak-ng speech from slmfactory.manifests.generate; the garbage files are written here with
soundfile (a 1 Hz WAV, a 1e30 float WAV, NaN samples, 40 channels, 6 ms). VAD: silero-vad's model
shipped inside the package (no download).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from slmfactory.manifests.audio import AudioError, load_audio, probe
from slmfactory.manifests.corpora import discover
from slmfactory.manifests.schema import segment_id
from slmfactory.pipelines.runner import run_recipe

GOOD = "good"  # marker in a good line's meta ("tag": "good-N")


def _write_audio(root: Path) -> Path:
    """Good espeak files and garbage audio under ``root``; one good file in ``root/../elsewhere``."""
    from slmfactory.manifests import generate as g

    root.mkdir(parents=True)
    for i, text in enumerate(g.SENTENCES[:3]):
        sf.write(root / f"good{i}.wav", g.sentence(text).wav, g.SR)
    outside = root.parent / "elsewhere"
    outside.mkdir()
    sf.write(outside / "secret.wav", g.sentence(g.SENTENCES[3]).wav, g.SR)
    sf.write(root / "tiny_1hz.wav", np.linspace(-0.5, 0.5, 10, dtype=np.float32), 1, subtype="FLOAT")
    loud = g.sentence(g.SENTENCES[4]).wav.astype(np.float32)
    loud = loud / np.abs(loud).max() * np.float32(1e30)  # peak exactly 1e30
    sf.write(root / "loud.wav", loud, g.SR, subtype="FLOAT")
    nan = g.sentence(g.SENTENCES[4]).wav.astype(np.float32)
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, g.SR, subtype="FLOAT")
    sf.write(root / "many_ch.wav", np.zeros((16000, 40), np.float32), g.SR, subtype="FLOAT")
    sf.write(root / "short.wav", np.full(100, 0.1, np.float32), g.SR)
    (root / "empty.wav").write_bytes(b"")
    (root / "dir.wav").mkdir()
    os.mkfifo(root / "fifo.wav")
    os.symlink(outside / "secret.wav", root / "link_out.wav")
    return root


# one case a line: what the line must become (good, or the stage and a fragment of its reason) | the JSON text;
# a few lines too long to write here are filled in by _expand
CASES = r"""
good     | -                                     | {"audio_path": "good0.wav", "text": "SENTENCE0", "tag": "good-1"}
good     | -                                     | {"audio_path": "good1.wav", "start": 0, "duration": 1.0, "text": "glue the sheet", "tag": "good-2"}
good     | -                                     | {"audio_filepath": "good2.wav", "text": "SENTENCE2", "speaker": 7, "tag": "good-3"}
good     | -                                     | {"audio_path": "good0.wav", "start": 0.25, "text": "SENTENCE0", "id": "custom", "tag": "good-4"}
good     | -                                     | {"text": "a text-only instruction row", "tag": "good-5"}
good     | -                                     | {"instruction": "alpaca-style: fields in meta", "output": "ok", "tag": "good-6"}
discover | duration must be a number of seconds  | {"audio_path": "good0.wav", "duration": 1e308}
discover | got inf                               | {"audio_path": "good0.wav", "duration": Infinity}
discover | got nan                               | {"audio_path": "good0.wav", "start": NaN}
discover | start must be                         | {"audio_path": "good0.wav", "start": -Infinity}
discover | got -1                                | {"audio_path": "good0.wav", "start": -1}
discover | (> 0), got 0                          | {"audio_path": "good0.wav", "duration": 0}
discover | got inf                               | {"audio_path": "good0.wav", "duration": 1e400}
discover | at most 1000000 s                     | START_1E40
discover | start must be                         | START_1E400
discover | at most 1000000 s                     | {"audio_path": "good0.wav", "duration": 2000000}
discover | got str '1.5'                         | {"audio_path": "good0.wav", "duration": "1.5"}
discover | got list                              | {"audio_path": "good0.wav", "start": [1]}
discover | got dict                              | {"audio_path": "good0.wav", "duration": {"s": 1}}
discover | got bool                              | {"audio_path": "good0.wav", "start": true}
discover | nothing to process                    | {"audio_path": null, "text": null}
discover | nothing to process                    | {"audio_path": "", "text": "   "}
discover | nothing to process                    | {"id": "only-an-id"}
discover | outside the corpus root               | {"audio_path": "../../etc/passwd"}
discover | outside the corpus root               | {"audio_path": "ABS_OUTSIDE"}
discover | outside the corpus root               | {"audio_path": "~/x.wav"}
discover | resolves to                           | {"audio_path": "link_out.wav"}
discover | is a directory                        | {"audio_path": "dir.wav"}
discover | FIFO                                  | {"audio_path": "fifo.wav"}
discover | not found                             | {"audio_path": "missing.wav"}
discover | NUL byte                              | {"audio_path": "good0.wav\u0000.wav"}
discover | audio_path must be a string, got int  | {"audio_path": 123}
discover | audio_path must be a string, got list | {"audio_path": ["good0.wav"]}
discover | text must be a string                 | {"audio_path": "good0.wav", "text": ["not", "a", "string"]}
discover | speaker must be a string              | {"audio_path": "good0.wav", "speaker": {"name": "x"}}
discover | id must be a string                   | {"audio_path": "good0.wav", "id": [1, 2]}
discover | id must be a string                   | {"audio_path": "good0.wav", "id": true}
discover | at most 256 characters                | LONG_ID
discover | not valid UTF-8                       | {"audio_path": "good0.wav", "text": "\ud800"}
discover | without audio_path                    | {"duration": 2.0}
discover | not valid JSON                        | {broken json
discover | got list                              | [1, 2]
discover | non-empty JSON object                 | {}
discover | got NoneType                          | null
discover | not valid JSON                        | DEEP
decode   | sample rate 1 Hz                      | {"audio_path": "tiny_1hz.wav"}
decode   | peak amplitude                        | {"audio_path": "loud.wav"}
decode   | NaN/inf samples                       | {"audio_path": "nan.wav"}
decode   | 40 channels                           | {"audio_path": "many_ch.wav"}
decode   | under the 25 ms minimum               | {"audio_path": "short.wav"}
decode   | empty (0 bytes)                       | {"audio_path": "empty.wav"}
decode   | no audio samples                      | {"audio_path": "good1.wav", "start": 100.0}
"""


def _expand(text: str) -> str:
    return {"START_1E40": '{"audio_path": "good0.wav", "start": 1' + "0" * 40 + "}",
            "START_1E400": '{"audio_path": "good0.wav", "start": 1' + "0" * 400 + "}",
            "LONG_ID": '{"audio_path": "good0.wav", "id": "' + "x" * 300 + '"}', "DEEP": "[" * 100_000}.get(text, text)


LINES = [(_expand(js), stage, frag.strip(" -")) for stage, frag, js in
         ([part.strip() for part in ln.split(" | ", 2)] for ln in CASES.strip().splitlines())]
FIXES = ("fix", "add", "write", "drop", "remove", "re-encode", "rescale", "rename", "point", "put", "allow", "re-")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, require_espeak):
    from slmfactory.manifests import generate as g

    base = tmp_path_factory.mktemp("hostile")
    root = _write_audio(base / "corpus")
    text = "\n".join(line for line, _, _ in LINES).replace("ABS_OUTSIDE", str(base / "elsewhere" / "secret.wav"))
    for i, sentence in enumerate(g.SENTENCES[:3]):  # the good lines' true transcripts (ingest checks speaking rate)
        text = text.replace(f"SENTENCE{i}", sentence)
    lines = text.split("\n")
    lines.insert(3, "")  # a blank line is no input
    (root / "manifest.jsonl").write_bytes("\n".join(lines).encode() + b"\n" + b'{"audio_path": "good0.wav", '
                                          b'"text": "caf\xe9"}\n')  # and a line that is not UTF-8
    out = base / "out"
    res = run_recipe("ingest", {"kind": "jsonl", "root": str(root / "manifest.jsonl"), "out": str(out),
                                "shard_size": 8, "min_seconds": 0.3}, executor="local")
    line_no = {i + 1 if i < 3 else i + 2: spec for i, spec in enumerate(LINES)}
    line_no[len(LINES) + 2] = ("caf\xe9", "discover", "not valid JSON")
    return res, out, root, line_no


def _line(input_: str) -> int:
    return int(input_.rsplit(":", 1)[1])


def test_every_line_is_a_good_row_or_an_error_row_naming_it_and_the_fix(hostile):
    res, out, root, line_no = hostile
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    err = pl.read_parquet(str(out / "errors" / "*.parquet"))
    assert res.inputs == len(line_no) >= 30 and (out / "run.json").exists()
    assert res.inputs == man.height + err.height, "rows in must equal good rows + error rows"
    good_tags = sorted(json.loads(m)["tag"] for m in man["meta"])
    assert good_tags == sorted(f"good-{i}" for i in range(1, 7))
    seen = {}
    for row in err.iter_rows(named=True):
        n = _line(row["input"])
        assert row["input"].startswith(str(root / "manifest.jsonl") + ":")
        assert n not in seen, f"line {n} gave two error rows"
        seen[n] = row
        _, stage, fragment = line_no[n]
        assert stage != GOOD, f"good line {n} was rejected: {row['reason']}"
        assert row["stage"] == stage, (n, row)
        assert fragment in row["reason"], (n, fragment, row["reason"])
        assert any(f in row["reason"].lower() for f in FIXES), f"no fix in: {row['reason']}"
        if stage == "discover":
            assert row["reason"].startswith(f"{root / 'manifest.jsonl'}:{n}: "), row["reason"]
        else:  # decode names the file
            assert str(root) in row["reason"]
    assert sorted(seen) == sorted(n for n, (_, s, _) in line_no.items() if s != GOOD)
    assert len(set(man["id"]) | set(err["id"])) == res.inputs


def test_the_issues_cases(hostile):
    res, out, root, _ = hostile
    err = pl.read_parquet(str(out / "errors" / "*.parquet"))
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    reasons = dict(zip(err["input"].map_elements(_line, return_dtype=pl.Int64), err["reason"]))

    def reason(json_text: str) -> str:
        n = next(i + 1 if i < 3 else i + 2 for i, (t, _, _) in enumerate(LINES) if t == json_text)
        return reasons[n]

    assert "got 1e+308" in reason('{"audio_path": "good0.wav", "duration": 1e308}')
    assert "nothing to process" in reason('{"audio_path": null, "text": null}')
    assert "../../etc/passwd" not in " ".join(man["audio_path"].drop_nulls())
    assert "/etc/passwd is outside the corpus root" in reason('{"audio_path": "../../etc/passwd"}')
    assert "elsewhere/secret.wav is outside the corpus root" in reason('{"audio_path": "ABS_OUTSIDE"}')
    assert "is a directory" in reason('{"audio_path": "dir.wav"}')
    assert "FIFO" in reason('{"audio_path": "fifo.wav"}') and "empty" not in reason('{"audio_path": "fifo.wav"}')
    assert "sample rate 1 Hz is outside [4000, 384000]" in reason('{"audio_path": "tiny_1hz.wav"}')
    assert "peak amplitude 1e+30" in reason('{"audio_path": "loud.wav"}')
    assert "start must be a number of seconds (>= 0), got nan" in reason('{"audio_path": "good0.wav", "start": NaN}')
    assert not any("1hz" in p or "loud" in p for p in man["audio_path"].drop_nulls())
    assert json.loads((out / "run.json").read_text())["counts"]["inputs"] == res.inputs


def test_allow_outside_root_lets_a_trusted_manifest_read_elsewhere(hostile, tmp_path):
    _, _, root, _ = hostile
    outside = root.parent / "elsewhere" / "secret.wav"
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio_path": str(outside)}) + "\n" + json.dumps({"audio_path": str(root / "fifo.wav")}))
    default, allowed = list(discover("jsonl", m)), list(discover("jsonl", m, allow_outside_root=True))
    assert all("outside the corpus root" in i["error"] for i in default)
    assert not allowed[0].get("error") and allowed[0]["audio_path"] == str(outside)
    assert "FIFO" in allowed[1]["error"]  # allowed outside, still never opened


def test_folder_corpus_fifo_directory_named_wav_bad_name_and_escaping_link(hostile, tmp_path):
    from slmfactory.manifests import generate as g

    _, _, corpus, _ = hostile
    root = tmp_path / "fo"
    root.mkdir()
    sf.write(root / "good.wav", g.sentence(g.SENTENCES[0]).wav, g.SR)
    (root / "good.txt").write_text(g.SENTENCES[0])
    os.mkfifo(root / "pipe.wav")
    os.mkfifo(root / "pipe.txt")  # a FIFO transcript beside real audio: never opened either
    sf.write(root / "pipe2.wav", g.sentence(g.SENTENCES[1]).wav, g.SR)
    os.rename(root / "pipe.txt", root / "pipe2.txt")
    (root / "x.wav").mkdir()
    sf.write(root / "x.wav" / "inner.wav", g.sentence(g.SENTENCES[2]).wav, g.SR)
    os.symlink(corpus.parent / "elsewhere", root / "linked_dir")
    os.symlink(corpus / "tiny_1hz.wav", root / "tiny_link.wav")  # escapes the root too
    (root / os.fsdecode(b"caf\xe9.wav")).write_bytes((root / "good.wav").read_bytes())
    out = tmp_path / "out"
    res = run_recipe("ingest", {"kind": "folder", "root": str(root), "out": str(out), "shard_size": 4,
                                "min_seconds": 0.3}, executor="local")
    man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
    err = pl.read_parquet(str(out / "errors" / "*.parquet"))
    assert res.inputs == man.height + err.height == 8
    assert sorted(Path(p).name for p in man["audio_path"]) == ["good.wav", "inner.wav"]
    by = {Path(i).name: r for i, r in zip(err["input"], err["reason"])}
    assert "FIFO" in by["pipe.wav"] and "FIFO" in by["pipe2.wav"] and "transcript" not in by["pipe.wav"]
    assert "is a directory" in by["x.wav"]
    assert "outside the corpus root" in by["secret.wav"] and "resolves to" in by["tiny_link.wav"]
    assert "not valid UTF-8" in next(r for i, r in by.items() if i.startswith("caf"))
    assert set(err["stage"]) == {"discover"}


def test_audio_bounds_reject_at_probe_and_load(hostile):
    _, _, root, _ = hostile
    for name, fragment in [("tiny_1hz.wav", "sample rate 1 Hz"), ("many_ch.wav", "40 channels"),
                           ("short.wav", "100 samples"), ("fifo.wav", "FIFO"), ("dir.wav", "directory")]:
        for fn in (probe, load_audio):
            with pytest.raises(AudioError, match=fragment):
                fn(str(root / name))
    with pytest.raises(AudioError, match="duration must be"):
        load_audio(str(root / "good0.wav"), 0.0, float("inf"))
    wav, info = load_audio(str(root / "good0.wav"))
    assert info.sample_rate == 16000 and np.abs(wav).max() <= 1.0


def test_segment_id_never_raises():
    for v in (1e308, float("inf"), float("nan"), -1e308, 10 ** 400, "x", [1], None):
        a, b = segment_id("s", "/a.wav", v, v, key="k"), segment_id("s", "/a.wav", v, v, key="k")
        assert a == b and a.startswith("k_")
    assert segment_id("s", "/a.wav", 1.5, 2.0, key="k") != segment_id("s", "/a.wav", 1.5, 2.5, key="k")


def test_lhotse_and_hf_kinds_turn_hostile_values_into_error_rows(hostile, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, root, _ = hostile
    (tmp_path / "a.wav").write_bytes((root / "good0.wav").read_bytes())
    os.mkfifo(tmp_path / "p.wav")
    recs = [{"id": "r1", "sources": [{"type": "file", "channels": [0], "source": "a.wav"}]},
            {"id": "r2", "sources": 5},
            {"id": "r3", "sources": [{"type": "file", "channels": [[0]], "source": "p.wav"}]},
            {"id": "r4", "sources": [{"type": "file", "channels": [0], "source": str(root / "good1.wav")}]}]
    sups = [{"id": "s1", "recording_id": "r1", "start": 0, "duration": 0.5},
            {"id": "s2", "recording_id": "r1", "start": float("nan"), "duration": 1e308},
            {"id": "s3", "recording_id": "r1", "start": "0", "duration": 1, "speaker": ["x"]}]
    (tmp_path / "x_recordings.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n[[[\n")
    (tmp_path / "x_supervisions.jsonl").write_text("\n".join(json.dumps(s) for s in sups) + "\n")
    by = {json.loads(i["meta"]).get("lhotse_id") or i["_input"]: i for i in discover("lhotse", tmp_path)}
    assert not by["s1"].get("error") and by["s1"]["duration"] == 0.5
    assert "got nan" in by["s2"]["error"] and "got str '0'" in by["s3"]["error"]
    assert "no sources" in by["r2"]["error"] and "FIFO" in by["r3"]["error"]
    assert "outside the corpus root" in by["r4"]["error"]
    assert any("not valid JSON" in (i.get("error") or "") for i in by.values())
    pq.write_table(pa.table({"path": ["a.wav", str(root / "good1.wav"), "p.wav", "../x.wav", None],
                             "text": ["ok", "t", "t", "t", None]}), tmp_path / "t.parquet")
    rows = list(discover("hf", tmp_path / "t.parquet"))
    assert not rows[0].get("error") and [r["text"] for r in rows[:4]] == ["ok", "t", "t", "t"]
    assert "outside the corpus root" in rows[1]["error"] and "FIFO" in rows[2]["error"]
    assert "outside the corpus root" in rows[3]["error"] and "nothing to process" in rows[4]["error"]
