"""Trainer speed and memory: tokens/s and MFU (fp32 vs bf16, cold-small vs SmolLM2-init), peak RSS vs corpus size.

Speed: one optimizer step (forward, backward, clip, AdamW) on ``--batch`` packed blocks of ``--context``
tokens with document resets, median of ``--repeats`` after a warm-up, for each model and precision. MFU =
6 * N * tokens/s / peak, N = parameters counted once (tied embeddings once), peak = a 2048x2048 matmul's
FLOP/s in the same precision measured in the same run (so MFU says how much of what this CPU *can* do the
training step gets; the bf16 ratio is against fp32 measured in the same run).

Memory: for each ``--rss-tokens`` size, synthetic packed shards (``slm/synthetic.py``, 2048-token blocks) are
written, then a fresh process streams one full epoch of training blocks plus the held-out split through
``slm/data.py`` and trains 3 steps of a tiny cold model; its peak RSS is printed. Flat = streaming works.

    .venv/bin/python bench/bench_train.py [--models cold,smollm2] [--context 256] [--batch 1] [--repeats 3]
                                          [--rss-tokens 2000000,20000000] [--skip-speed] [--skip-rss]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from timing import median_time  # bench/timing.py (the script's folder is on sys.path)


def peak_flops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    return 2 * n ** 3 / median_time(lambda: a @ b, repeats)


def speech_info(model_key: str, context: int, units: int = 500) -> dict:
    from slmfactory.slm.synthetic import vocab_info

    if model_key == "cold":
        return vocab_info(units, context)
    from transformers import AutoTokenizer

    from slmfactory.manifests.models import llm_dir

    n = len(AutoTokenizer.from_pretrained(llm_dir()))
    specials = {s: n + i for i, s in enumerate(["[TEXT]", "[SPEECH]", "[EOS]", "[PAD]"])}
    return {**vocab_info(units, context), "text_vocab_size": n, "unit_offset": n + 4, "vocab_size": n + 4 + units,
            "special_tokens": specials, "text_tokenizer": {"path": str(llm_dir() / "tokenizer.json")}}


def step_speed(model_key: str, precision: str, context: int, batch: int, repeats: int) -> dict:
    from slmfactory.slm.data import to_batch
    from slmfactory.slm.init import build_model
    from slmfactory.slm.model import count_params, token_nll_sum
    from slmfactory.slm.precision import autocast
    from slmfactory.slm.train import TrainConfig, _optimizer

    info = speech_info(model_key, context)
    model, _, _ = build_model("cold" if model_key == "cold" else "smollm2", info, {}, 0)
    model.train()
    opt = _optimizer(model, TrainConfig(data="", out=""))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(info["unit_offset"], info["vocab_size"], (batch, context), generator=g).numpy()
    pos = (torch.arange(context) % max(1, context // 3)).repeat(batch, 1).numpy()  # three documents per block
    b = to_batch(ids, (ids * 0 + 1), pos)
    x, p, y = (torch.from_numpy(a) for a in (b.input_ids, b.position_ids, b.labels))
    dev = torch.device("cpu")

    def step() -> None:
        with autocast(dev, precision):
            (token_nll_sum(model, x, p, y) / b.targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    sec = median_time(step, repeats)
    return {"model": model_key, "precision": precision, "params": count_params(model), "tokens_per_s": batch * context / sec,
            "step_s": sec}


RSS_CHILD = r"""
import json, sys, time
import numpy as np
from slmfactory.slm.data import PackedBlocks
from slmfactory.slm.train import TrainConfig, train
folder, out = sys.argv[1], sys.argv[2]
d = PackedBlocks(folder, val_fraction=0.01)
t0, n = time.time(), 0
for i, blk in zip(range(d.num_train), d.stream(0)):
    n += int(blk[1].sum())
v = sum(int(b[1].sum()) for b in d.validation())
stream_s = time.time() - t0
tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64}
train(TrainConfig(data=folder, out=out, steps=3, batch_size=1, precision="fp32", eval_every=0, val_max_blocks=4,
                  val_fraction=0.01, model=tiny, progress=False))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so it would report the parent's peak
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"train_tokens_streamed": n, "val_tokens": v, "stream_s": stream_s, "peak_rss_mb": hwm / 1024}))
"""


def rss_at(tokens: int) -> dict:
    from slmfactory.slm.synthetic import write_packed

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_packed(Path(tmp) / "packed", tokens, context_length=2048, num_units=500)
        size_mb = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2 ** 20
        res = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder), str(Path(tmp) / "out")],
                             capture_output=True, text=True, check=True)
        return {"tokens": tokens, "parquet_mb": size_mb, **json.loads(res.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cold,smollm2")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rss-tokens", default="2000000,20000000")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    if not a.skip_speed:
        peak = {p: peak_flops(dt) for p, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        print(f"peak (2048^3 matmul): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s")
        print(f"{'model':8s} {'prec':5s} {'params':>11s} {'tokens/s':>9s} {'vs fp32':>8s} {'MFU':>6s}  "
              f"(batch {a.batch} x {a.context} tokens, median of {a.repeats})")
        for key in a.models.split(","):
            base = None
            for prec in ("fp32", "bf16"):
                r = step_speed(key, prec, a.context, a.batch, a.repeats)
                base = base or r["tokens_per_s"]
                mfu = 6 * r["params"] * r["tokens_per_s"] / peak[prec]
                print(f"{key:8s} {prec:5s} {r['params']:11,d} {r['tokens_per_s']:9.1f} {r['tokens_per_s'] / base:7.2f}x "
                      f"{100 * mfu:5.1f}%", flush=True)
    if not a.skip_rss:
        print(f"{'tokens':>11s} {'parquet MB':>10s} {'streamed':>11s} {'stream s':>8s} {'peak RSS MB':>11s}")
        for n in (int(x) for x in a.rss_tokens.split(",")):
            r = rss_at(n)
            print(f"{r['tokens']:11,d} {r['parquet_mb']:10.1f} {r['train_tokens_streamed']:11,d} {r['stream_s']:8.1f} "
                  f"{r['peak_rss_mb']:11.0f}", flush=True)


if __name__ == "__main__":
    main()
