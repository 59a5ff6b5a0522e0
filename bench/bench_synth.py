"""Benchmark the synthesis building blocks; prints medians and ratios against a baseline from the same run.

* TTS real-time factor (synthesis seconds / audio seconds, lower is faster) per available backend,
  batched (``workers`` processes at once) vs one-by-one. Coqui/piper run when given local models.
* Alignment-gate cost per second of audio.
* LLM completion tokens/s of the default backend (transformers + the bundled SmolLM2-135M-Instruct, CPU)
  on the recipes' own prompts (SQA pairs from LibriSpeech-like transcripts, spoken rewrites of the sample
  instructions), batch 1 vs ``--batch`` (one left-padded ``generate`` call per batch); ``--tiny`` measures a
  tiny random Llama instead (our batching overhead, not a real model's speed).

    .venv/bin/python bench/bench_synth.py [--repeats 3] [--n 16] [--coqui DIR] [--piper FILE.onnx] [--gate-quality]
    .venv/bin/python bench/bench_synth.py --only llm [--n 16] [--batch 8] [--max-tokens 48]

``--gate-quality`` also measures the alignment gate's pass/catch rates on 72 espeak-ng utterances (the
figures quoted in synth/gates.py).
"""
from __future__ import annotations

import argparse
import tempfile

from slmfactory.manifests.generate import SENTENCES
from timing import median_time, timed  # bench/timing.py (the script's folder is on sys.path)




def bench_tts(name: str, tts, texts: list[str], voices: list[str], repeats: int) -> None:
    wavs = tts.synthesize(texts, voices)
    audio_s = sum(len(w) for w in wavs) / tts.sample_rate
    workers = getattr(tts, "workers", 1)
    t_batched = median_time(lambda: tts.synthesize(texts, voices), repeats)
    if hasattr(tts, "workers"):
        tts.workers = 1
    t_single = median_time(lambda: [tts.synthesize([t], [v]) for t, v in zip(texts, voices)], repeats)
    if hasattr(tts, "workers"):
        tts.workers = workers
    print(f"tts {name}: {len(texts)} utts, {audio_s:.1f} s audio | one-by-one RTF {t_single / audio_s:.4f} | "
          f"batched(workers={workers}) RTF {t_batched / audio_s:.4f} | speed-up x{t_single / t_batched:.2f}")
    return wavs, audio_s


def gate_quality() -> None:
    """Correct texts must pass; texts with substituted words and wrong texts must fail."""
    from slmfactory.synth.gates import AlignGate
    from slmfactory.synth.tts_espeak import EspeakTts

    tts = EspeakTts()
    voices = ["en-us", "en-us+f3", "en-gb+m3", "en-029+f4", "en-gb-x-rp+f2", "en-us+m7"]
    items = [(i, s, v) for i, s in enumerate(SENTENCES[:12]) for v in voices]
    wavs = tts.synthesize([s for _, s, _ in items], [v for *_, v in items])
    for label, gate in (("alignment only", AlignGate(min_word_score=None)), ("defaults", AlignGate())):
        c = {"good": 0, "one": 0, "two": 0, "wrong": 0}
        for (i, s, _), w in zip(items, wavs):
            ws = s.split()
            one = list(ws)
            one[len(ws) // 2] = "banana"
            c["good"] += gate(s, w, tts.sample_rate).passed
            c["one"] += not gate(" ".join(one), w, tts.sample_rate).passed
            c["two"] += not gate(" ".join(ws[:-2] + ["purple", "elephant"]), w, tts.sample_rate).passed
            c["wrong"] += not gate(SENTENCES[(i + 1) % 12], w, tts.sample_rate).passed
        print(f"align gate ({label}): correct pass {c['good']}/72 | caught: 1-word sub {c['one']}/72, "
              f"2-word sub {c['two']}/72, wrong text {c['wrong']}/72")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=16, help="utterances / prompts")
    ap.add_argument("--coqui", default=None, help="local Coqui model folder")
    ap.add_argument("--piper", default=None, help="local piper .onnx voice")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--gate-quality", action="store_true")
    ap.add_argument("--only", choices=["all", "llm", "tts"], default="all")
    ap.add_argument("--batch", type=int, default=8, help="LLM batch size compared with batch 1")
    ap.add_argument("--tiny", action="store_true", help="LLM bench on a tiny random Llama instead of SmolLM2")
    a = ap.parse_args()
    if a.only != "tts":
        bench_llm(a)
    if a.only == "llm":
        return
    if a.gate_quality:
        gate_quality()

    from slmfactory.synth.gates import AlignGate
    from slmfactory.synth.tts import make_tts
    from slmfactory.synth.tts_espeak import EspeakTts
    from slmfactory.synth.voices import VoiceSampler

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(a.n)]
    esp = EspeakTts(workers=4)
    voices = [VoiceSampler(esp.voices(), 0).pick(str(i)) for i in range(a.n)]
    wavs, audio_s = bench_tts("espeak", esp, texts, voices, a.repeats)
    for name, kw in (("coqui", {"model_dir": a.coqui}), ("piper", {"model_path": a.piper})):
        if list(kw.values())[0]:
            tts = make_tts(name, **kw)
            pool = tts.voices() or [""]
            bench_tts(name, tts, texts, [pool[i % len(pool)] for i in range(a.n)], a.repeats)
        else:
            print(f"tts {name}: skipped (pass --{name} with a local model)")

    gate = AlignGate()
    t_gate = median_time(lambda: [gate(t, w, esp.sample_rate) for t, w in zip(texts, wavs)], a.repeats)
    t_synth = median_time(lambda: esp.synthesize(texts, voices), a.repeats)
    print(f"align gate: {t_gate / audio_s:.4f} s per audio second | gate/synthesis time ratio {t_gate / t_synth:.2f}")



def llm_prompts(n: int) -> list:
    """The recipes' own prompts: SQA pairs on LibriSpeech-like sentences and spoken rewrites of the sample."""
    import json

    from slmfactory.synth import filters
    from slmfactory.synth.crossmodal import DATA
    from slmfactory.synth.prompts import spoken_prompt, sqa_prompt
    from slmfactory.synth.sqa import readable

    items = [json.loads(x) for x in (DATA / "instructions_sample.jsonl").read_text().splitlines()]
    out = []
    for i in range(n):
        if i % 2:
            it = items[i % len(items)]
            out.append(spoken_prompt(it["instruction"], it.get("input", "")))
        else:
            t = readable(SENTENCES[i % len(SENTENCES)].upper())
            out.append(sqa_prompt(t, filters.focus_words(t, 1)[0]))
    return out


def bench_llm(a) -> None:
    """Completion tokens/s, batch 1 vs ``--batch``, greedy, on the same prompts (medians of ``--repeats``)."""
    from slmfactory.synth.llm import GenParams
    from slmfactory.synth.llm_transformers import TransformersLlm

    with tempfile.TemporaryDirectory() as tmp:
        if a.tiny:
            from slmfactory.synth.tiny import make_tiny_llm

            path, label = str(make_tiny_llm(tmp)), "tiny random Llama"
        else:
            path, label = None, "bundled SmolLM2-135M-Instruct fp32"
        prompts = llm_prompts(a.n)
        params = GenParams(max_tokens=a.max_tokens)
        rates = {}
        for bs in (1, a.batch):
            llm = TransformersLlm(path, batch_size=bs)
            llm.generate(prompts[:2], params)  # warm-up
            llm.stats["completion_tokens"] = 0
            sec, _ = timed(lambda: llm.generate(prompts, params), a.repeats)
            rates[bs] = llm.stats["completion_tokens"] / max(1, a.repeats) / sec
        print(f"llm transformers ({label}, CPU, {a.n} prompts, max {a.max_tokens} new tokens): batch 1 "
              f"{rates[1]:.1f} tok/s | batch {a.batch} {rates[a.batch]:.1f} tok/s | "
              f"speed-up x{rates[a.batch] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
