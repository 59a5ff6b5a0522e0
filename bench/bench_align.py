"""Alignment speed: real-time factors and batched-vs-one-by-one, measured in the same run.

    .venv/bin/python bench/align.py            # wav2vec2-base sized CTC model (random weights), 3 repeats
    .venv/bin/python bench/align.py --quick    # a small CTC model, for a smoke run

Prints medians over repeats:
* offline aligner (pocketsphinx) RTF = align seconds / audio seconds, on the real LibriVox clips;
* CTC aligner RTF with emissions batched (``--batch`` windows at once) and one-by-one, and the ratio
  (on CPU, padding short clips to the longest in the batch can cost more than batching saves; short equal
  windows, ``--window 2``, pad little; on a GPU use ``--device cuda``);
* the CTC path alone: torchaudio's forced_align vs our ctc_viterbi on the same emissions, and the ratio.
The CTC model is a randomly initialised Wav2Vec2ForCTC of the real (base) architecture on CPU: speed does
not depend on the weights. No timing is asserted anywhere; compare ratios, not absolute seconds.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from timing import median_time  # bench/timing.py (the script's folder is on sys.path)




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small CTC model and one repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=float, default=10.0, help="CTC emission window in seconds")
    ap.add_argument("--device", default="cpu", help="cpu or cuda for the CTC model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    repeats = 1 if a.quick else a.repeats

    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from slmfactory.manifests import generate as gen
    from slmfactory.stages.align_ctc import CtcAligner
    from slmfactory.stages.align_sphinx import PocketsphinxAligner
    from slmfactory.manifests.audio import load_audio
    from slmfactory.stages.ctc import ctc_viterbi, forced_align
    from slmfactory.stages.textnorm import normalized_words

    clips = gen.librivox_clips()
    if not clips:
        raise SystemExit("LibriVox clips missing: python -m slmfactory.manifests.generate fetch-librivox")
    wavs = [load_audio(str(p))[0] for p, _ in clips]
    words = [normalized_words(t) for _, t in clips]
    audio_s = sum(len(w) for w in wavs) / 16000
    print(f"audio: {len(wavs)} LibriVox clips, {audio_s:.1f} s; torch threads {a.threads}; repeats {repeats}")

    ps = PocketsphinxAligner()
    t_ps = median_time(lambda: ps.align_batch(wavs, words), repeats)
    print(f"pocketsphinx align: median {t_ps:.3f} s  RTF {t_ps / audio_s:.4f}  ({audio_s / t_ps:.0f}x real time)")

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for c in "ETAONIHSRDLUMWCFGYPBVK'XJQZ":
        vocab[c] = len(vocab)
    if a.quick:
        cfg = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=128, conv_dim=(64,) * 7, num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=4, pad_token_id=0)
    else:  # wav2vec2-base architecture (95M parameters)
        cfg = Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=0)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(cfg)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    batched = CtcAligner("", window_s=a.window, batch_size=a.batch, model=model, vocab=vocab, device=a.device)
    single = CtcAligner("", window_s=a.window, batch_size=1, model=model, vocab=vocab, device=a.device)
    batched.align_batch(wavs[:1], words[:1])  # warm-up
    t_b = median_time(lambda: batched.align_batch(wavs, words), repeats)
    t_1 = median_time(lambda: [single.align_batch([w], [ws]) for w, ws in zip(wavs, words)], repeats)
    print(f"CTC align ({n_params:.0f}M-param wav2vec2, random weights, {a.window:g} s windows, {a.device}):")
    print(f"  batched x{a.batch}: median {t_b:.3f} s  RTF {t_b / audio_s:.4f}")
    print(f"  one-by-one:  median {t_1:.3f} s  RTF {t_1 / audio_s:.4f}")
    print(f"  batched speed-up: {t_1 / t_b:.2f}x")

    ems = batched.emissions(wavs)
    targets = [batched._targets(ws)[0] for ws in words]
    t_ta = median_time(lambda: [forced_align(e, t, batched.blank, impl="torchaudio") for e, t in zip(ems, targets)], repeats)
    t_vi = median_time(lambda: [ctc_viterbi(e, t, batched.blank) for e, t in zip(ems, targets)], repeats)
    same = all(np.array_equal(forced_align(e, t, batched.blank, impl="torchaudio")[0], ctc_viterbi(e, t, batched.blank)[0])
               for e, t in zip(ems, targets))
    print(f"CTC path only ({sum(e.shape[0] for e in ems)} frames): torchaudio {t_ta * 1000:.1f} ms, "
          f"ctc_viterbi {t_vi * 1000:.1f} ms, ratio viterbi/torchaudio {t_vi / t_ta:.2f}; identical paths: {same}")


if __name__ == "__main__":
    main()
