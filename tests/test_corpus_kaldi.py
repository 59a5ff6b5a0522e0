"""The ``kaldi`` corpus kind: a Kaldi/ESPnet data directory built from the real LibriVox clips.

Audio: pocketsphinx's LibriVox clips (fetched by `make setup`), laid out the way Kaldi recipes do:
``data/train/{wav.scp,text,utt2spk,segments}`` with paths relative to ``data/``'s parent.
"""
from __future__ import annotations

import shutil

import polars as pl
import soundfile as sf

from slmfactory.manifests.corpora import discover
from slmfactory.pipelines.runner import run_recipe


def _data_dir(tmp_path, librivox):
    (tmp_path / "wav").mkdir()
    recs = []
    for i, (wav, text) in enumerate(librivox[:2]):
        dst = tmp_path / "wav" / f"rec{i}.wav"
        shutil.copy(wav, dst)
        recs.append((f"rec{i}", dst, text, sf.info(str(wav)).duration))
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{r} wav/{p.name}\n" for r, p, _, _ in recs)
                               + "rec9 sox in.mp3 -t wav - |\n" + f"rec8 {librivox[0][0]}\n")
    seg_lines, text_lines, spk_lines = [], [], []
    for r, _, text, dur in recs:  # each recording cut in two halves
        for k, (a, b) in enumerate(((0.0, dur / 2), (dur / 2, dur))):
            utt = f"spk{r[-1]}-{r}-{k}"
            seg_lines.append(f"{utt} {r} {a:.2f} {b:.2f}\n")
            text_lines.append(f"{utt} {text.upper() if k == 0 else ''}\n")
            spk_lines.append(f"{utt} spk{r[-1]}\n")
    seg_lines += ["bad-utt rec0 5.0 2.0\n", "lost-utt rec7 0.0 1.0\n", "cmd-utt rec9 0.0 1.0\n",
                  "far-utt rec8 0.0 1.0\n"]
    (d / "segments").write_text("".join(seg_lines))
    (d / "text").write_text("".join(text_lines))
    (d / "utt2spk").write_text("".join(spk_lines))
    return d, recs


def test_kaldi_data_dir_discovers_segments_and_refuses_commands(tmp_path, librivox):
    d, recs = _data_dir(tmp_path, librivox)
    items = list(discover("kaldi", str(d)))
    assert len(items) == 4 + 4, "every segments line is an item, good or rejected"
    good = [it for it in items if not it.get("error")]
    assert [it["speaker"] for it in good] == ["spk0", "spk0", "spk1", "spk1"]
    assert good[0]["audio_path"] == str(tmp_path / "wav" / "rec0.wav")
    assert good[1]["start"] == round(recs[0][3] / 2, 2) and good[1]["text"] is None
    assert good[0]["text"] == recs[0][2].upper()
    reasons = {it["meta"]: it["error"] for it in items if it.get("error")}
    joined = " ".join(reasons.values())
    assert "never run" in joined and "rec7" in joined and "start < end" in joined and "outside the corpus root" in joined
    allowed = list(discover("kaldi", str(d), allow_outside_root=True))
    assert not [it for it in allowed if it["id"].startswith("far-utt")][0].get("error")


def test_kaldi_ingest_end_to_end(tmp_path, librivox):
    d, recs = _data_dir(tmp_path, librivox)
    res = run_recipe("ingest", {"kind": "kaldi", "root": str(d), "out": str(tmp_path / "out")}, executor="local")
    assert res.inputs == res.rows + res.errors and res.errors >= 4
    man = pl.read_parquet(str(tmp_path / "out" / "manifest" / "*.parquet"))
    assert set(man["speaker"]) == {"spk0", "spk1"}
    total = sum(dur for *_, dur in recs)
    assert 0.5 * total < man["duration"].sum() <= total + 0.01, "VAD segments stay inside the Kaldi segments"
