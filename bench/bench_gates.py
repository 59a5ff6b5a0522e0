"""Gate accept / catch rates per voice on a labelled set generated here (synth/gate_eval.py).

For every voice and sentence: the correct clip, a one-word substitution, a truncation (first 60 %),
silence and another sentence's audio. Prints, per voice, the share of correct clips the gate accepts
and of each kind of bad clip it catches, and whether the voice meets the targets (>= 95 % accepted,
>= 90 % of substitutions caught). ``--sweep`` re-judges the same transcripts over a grid of ``max_per``
/ ``max_miss`` / ``min_miss_chars`` (how the defaults were chosen); ``--align`` measures the opt-in alignment gate as well.

    .venv/bin/python bench/bench_gates.py [--voices V ...] [--sentences 24] [--sweep] [--align] [--save F | --load F]
"""
from __future__ import annotations

import argparse
import json
import time

from slmfactory.manifests.generate import SENTENCES

SPOKEN = [  # instruction-data style: questions, requests and short answers, as the synth recipes speak them
    "Can you give me three tips for staying healthy?",
    "Water evaporates from seas and lakes, rises as vapour, cools into clouds, and falls back as rain.",
    "Explain why the sky looks blue during the day.",
    "What is the difference between a virus and a bacterium?",
    "It takes about eight minutes for sunlight to reach the Earth.",
    "Please list four animals that live in the desert.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "Remember to drink enough water, especially when it is hot outside.",
    "How many legs does a spider have?",
    "The capital of France is Paris, a city on the river Seine.",
    "Write a short poem about the ocean at night.",
    "A balanced breakfast gives you energy for the whole morning.",
    "Why do leaves change colour in the autumn?",
    "Bees carry pollen from one flower to the next.",
    "Tell me a fun fact about octopuses.",
    "The library opens at nine and closes at six on weekdays.",
]
PIPER = "piper:en_US-joe-medium"
VOICES = [PIPER, f"{PIPER}@length_scale=0.9,noise_scale=0.8,noise_w=1.0",
          f"{PIPER}@length_scale=1.1,noise_scale=0.5,noise_w=0.6",
          "espeak:en-us", "espeak:en-us+f3", "espeak:en-us+m7", "espeak:en-gb+m3", "espeak:en-gb-x-rp+f2",
          "espeak:en-029+f4", "espeak:en-gb-scotland"]


def table(title: str, tab: dict) -> None:
    from slmfactory.synth.gate_eval import meets_targets, rates

    print(f"\n{title}\n| voice | correct accepted | substitution caught | truncation caught | silence caught | "
          f"other sentence caught | meets targets |\n|---|---|---|---|---|---|---|")
    for voice, r in rates(tab).items():
        cells = [f"{r.get(k, float('nan')):.0%} ({tab[voice][kind][1]})" for k, kind in
                 (("accept", "correct"), ("catch_substitution", "substitution"), ("catch_truncation", "truncation"),
                  ("catch_silence", "silence"), ("catch_other", "other"))]
        print(f"| {voice} | " + " | ".join(cells) + f" | {'yes' if meets_targets(r) else 'NO'} |")


def judged(gate, records: list) -> dict:
    """{voice: {kind: [passed, total]}} of ``gate.judge`` over saved (voice, kind, text, heard) records."""
    tab: dict = {}
    for voice, kind, text, heard in records:
        cell = tab.setdefault(voice, {}).setdefault(kind, [0, 0])
        cell[0] += int(gate.judge(text, heard).passed)
        cell[1] += 1
    return tab


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voices", nargs="*", default=VOICES)
    ap.add_argument("--sentences", type=int, default=24, help="half Harvard sentences, half spoken-instruction style")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--align", action="store_true", help="also the opt-in alignment gate")
    ap.add_argument("--save", help="write the transcripts (voice, kind, text, heard) to this JSON file")
    ap.add_argument("--load", help="re-judge saved transcripts instead of speaking and transcribing")
    a = ap.parse_args()

    from slmfactory.synth.gate_eval import labelled_set, meets_targets, rates
    from slmfactory.synth.gates import AlignGate, WerGate

    gate = WerGate.from_config({}) if not a.load else WerGate(None)
    if a.load:
        with open(a.load, encoding="utf-8") as f:
            records = json.load(f)
    else:
        from slmfactory.synth.tts import TtsPool

        half = a.sentences // 2
        sentences = SENTENCES[:a.sentences - half] + SPOKEN[:half]
        pool = TtsPool("piper", sample_rate=16000)
        t0 = time.perf_counter()
        clips = labelled_set(sentences, a.voices, pool.synthesize, pool.sample_rate)
        print(f"{len(clips)} clips ({len(sentences)} sentences x {len(a.voices)} voices x 5 kinds) in "
              f"{time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        heard = gate.transcribe([c.wav for c in clips])
        print(f"Whisper tiny.en: {len(clips)} clips transcribed in {time.perf_counter() - t0:.0f} s")
        records = [(c.voice, c.kind, c.text, h) for c, h in zip(clips, heard)]
        if a.save:
            with open(a.save, "w", encoding="utf-8") as f:
                json.dump(records, f, indent=0)
    table(f"wer gate (max_per {gate.max_per}, max_miss {gate.max_miss}, min_miss_chars {gate.min_miss_chars}; "
          f"Whisper tiny.en)", judged(gate, records))
    print("\ncorrect clips the gate rejects:")
    for voice, kind, text, h in records:
        r = gate.judge(text, h)
        if kind == "correct" and not r.passed:
            print(f"  {voice}: {text!r} -> {r.detail}")
    if a.sweep:
        print("\nsweep: voices meeting the targets | piper voices: worst accept, worst substitution catch")
        for max_wer in (0.1, 0.2, 0.3, 0.5):  # WER alone, for comparison
            r = rates(judged(WerGate(None, max_per=1.0, max_miss=None, max_wer=max_wer), records))
            pip = [x for v, x in r.items() if v.startswith("piper")] or list(r.values())
            print(f"WER only, max_wer {max_wer}: {sum(meets_targets(x) for x in r.values())}/{len(r)} voices | "
                  f"{min(x['accept'] for x in pip):.2f} | {min(x['catch_substitution'] for x in pip):.2f}")
        for max_per in (0.25, 0.3, 0.35, 0.4, 0.5):
            for max_miss in (0.3, 0.4, 0.5, None):
                for chars in (2, 3, 4):
                    r = rates(judged(WerGate(None, max_per, max_miss, chars), records))
                    ok = sum(meets_targets(x) for x in r.values())
                    pip = [x for v, x in r.items() if v.startswith("piper")] or list(r.values())
                    print(f"max_per {max_per} max_miss {max_miss} min_miss_chars {chars}: {ok}/{len(r)} voices | "
                          f"{min(x['accept'] for x in pip):.2f} | {min(x['catch_substitution'] for x in pip):.2f}")
    if a.align and not a.load:
        from slmfactory.synth.gate_eval import evaluate

        table("alignment gate (opt-in; pocketsphinx, defaults)", evaluate(AlignGate(), clips))


if __name__ == "__main__":
    main()
