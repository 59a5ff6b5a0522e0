"""Train a speech LM on packed shards (``OUT/packed``): TWIST init or cold, streaming data, exact resume, N workers.

The loop a researcher expects, readable in one sitting. Defaults follow slamkit's Slam recipe where it
applies (AdamW, lr 1e-3 cosine to a 5e-5 floor, 1% warm-up, grad clip 0.5, bf16). One optimizer step
consumes a *global batch* of ``batch_size * grad_accum * workers`` blocks; every rank takes its slice of
the same global batch and the loss is normalised by the global number of target tokens, so 2 workers and
1 worker with 2x accumulation compute the same update (``tests/test_slm_train.py`` checks the curves).
Budgets: ``steps``, ``tokens`` (both fix the cosine horizon) and ``minutes`` (a wall-clock cap). Alone,
``minutes`` runs the cosine on the clock (progress = elapsed / budget), so the lr reaches its floor when the
time is up however fast the machine is that day; a horizon estimated from timed micro-batches only sizes the
warm-up and the progress bar. (A step horizon from one timed batch stopped runs at lr 8.8e-4 of 1e-3 when
the machine got busier mid-run.)
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint, save_model, speech_lm_info
from .data import PackedBlocks, to_batch, validation_batches
from .init import build_model
from .metrics import MetricsLog, plot_metrics
from .model import count_params, token_nll_sum
from .precision import autocast, resolve_precision
from .textdata import TextBlocks, text_blocks_before


@dataclass
class TrainConfig:
    data: str  # folder with packed *.parquet and dataset_info.json
    out: str
    init: str = "cold"  # cold | smollm2 (bundled SmolLM2-135M-Instruct) | a local HF causal-LM folder
    model: dict[str, Any] = field(default_factory=dict)  # cold LlamaConfig overrides (hidden_size, num_hidden_layers...)
    steps: int | None = None  # budgets: steps or tokens fix the schedule; minutes caps the wall clock
    tokens: int | None = None
    minutes: float | None = None
    batch_size: int = 8  # blocks per micro-batch per worker
    grad_accum: int = 1
    workers: int = 1  # > 1: Ray Train TorchTrainer (DDP; gloo on CPU, nccl on GPUs)
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_frac: float = 0.01
    weight_decay: float = 0.1
    grad_clip: float = 0.5
    precision: str = "auto"  # auto | bf16 | fp32
    val_fraction: float = 0.02
    val_max_blocks: int = 64
    eval_every: int = 50
    checkpoint_every: int = 100
    keep_last: int = 2
    log_every: int = 1
    text_corpus: str | None = None  # optional text file / JSONL mixed in at text_share of the tokens
    text_share: float = 0.0
    text_normalize: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps is None and self.tokens is None and self.minutes is None:
            self.steps = 200
        if self.text_share and not self.text_corpus:
            raise ValueError("text_share > 0 needs text_corpus=<a text or JSONL file>")
        if not 0 <= self.text_share < 1:
            raise ValueError(f"text_share {self.text_share}: give a share of tokens in [0, 1)")


def lr_at(step: int, cfg: TrainConfig, horizon: int, clock: float | None = None) -> float:
    """Linear warm-up over ``warmup_frac`` of the run (slamkit: 1%), but never fewer than min(10, horizon/10)
    steps: a short run must not take its first step at full lr (TWIST init showed grad norms of 30+ there).
    Then cosine over the steps, or over ``clock`` (the elapsed share of a ``minutes``-only budget)."""
    warm = max(int(cfg.warmup_frac * horizon), min(10, max(1, horizon // 10)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = min(1.0, clock if clock is not None else (step - warm) / max(1, horizon - warm))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def pick_device(name: str, rank: int = 0) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device(f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")


def _reduce(x: float, world: int, op: str = "sum") -> float:
    if world == 1:
        return x
    import torch.distributed as dist

    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return float(t.item())


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


@torch.no_grad()
def validation_loss(model, data: PackedBlocks, cfg: TrainConfig, device, precision: str, rank: int = 0,
                    world: int = 1) -> float | None:
    """Mean NLL per target token on the held-out blocks (split over ranks, summed over all)."""
    model.eval()
    nll, n = 0.0, 0
    for i, b in enumerate(validation_batches(data, cfg.batch_size, cfg.val_max_blocks)):
        if i % world != rank:
            continue
        with autocast(device, precision):
            nll += float(token_nll_sum(model, *(torch.from_numpy(a).to(device) for a in
                                                (b.input_ids, b.position_ids, b.labels))))
        n += b.targets
    model.train()
    nll, n = _reduce(nll, world), _reduce(float(n), world)
    return nll / n if n else None


def run(cfg: TrainConfig, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """The training loop of one worker (``world`` > 1: inside an initialised torch.distributed group)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device, rank)
    data = PackedBlocks(cfg.data, cfg.val_fraction, cfg.seed)
    info, ctx_len = data.info, data.context_length
    text = TextBlocks(cfg.text_corpus, info, cfg.text_normalize) if cfg.text_share > 0 else None
    model, tok, init_label = build_model(cfg.init, info, cfg.model, cfg.seed)
    model.to(device).train()
    model.config.use_cache = False
    opt = _optimizer(model, cfg)
    out, config = Path(cfg.out), asdict(cfg)
    out.mkdir(parents=True, exist_ok=True)
    meta = speech_lm_info(info, init_label if init_label == "cold" else cfg.init, config)
    ckpts = list_checkpoints(out)
    state = load_checkpoint(ckpts[-1], model, opt, config) if ckpts else {}
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    gb = cfg.batch_size * cfg.grad_accum * world
    step, start = int(state.get("step", 0)), int(state.get("step", 0))
    seen, text_targets, all_targets = (int(state.get(k, 0)) for k in ("tokens", "text_targets", "targets"))
    train_s = float(state.get("train_seconds", 0.0))
    precision = state.get("precision") or resolve_precision(cfg.precision, device)
    horizon = state.get("horizon") or _horizon(cfg, net, data, device, precision, gb, ctx_len, world)
    share = cfg.text_share
    packed = data.stream(step * gb - text_blocks_before(step, share, gb))
    texts = text.stream(text_blocks_before(step, share, gb)) if text else None
    log = MetricsLog(out, step) if rank == 0 else None
    bar = _progress(horizon, step) if rank == 0 and cfg.progress else None
    losses: list[float] = []
    last_val: tuple[int, float | None] = (-1, None)  # (step, held-out loss) of the latest in-loop validation
    val = None
    reason = "steps" if cfg.steps else "tokens" if cfg.tokens else "minutes"
    on_clock = not cfg.steps and not cfg.tokens  # minutes alone: the schedule follows the clock
    t_run, s_before = time.time(), train_s
    while step < horizon or on_clock:
        elapsed = _reduce(s_before + time.time() - t_run, world, "max") if cfg.minutes is not None else 0.0
        if cfg.minutes is not None and elapsed >= cfg.minutes * 60:
            reason = "minutes"
            break
        t0 = time.time()
        n_text = text_blocks_before(step + 1, share, gb) - text_blocks_before(step, share, gb)
        blocks = [next(texts) for _ in range(n_text)] + [next(packed) for _ in range(gb - n_text)]
        micro = [to_batch(*(np.stack(c) for c in zip(*blocks[(m * world + rank) * cfg.batch_size:
                                                             (m * world + rank + 1) * cfg.batch_size])))
                 for m in range(cfg.grad_accum)]
        local = sum(b.targets for b in micro)
        total = _reduce(float(local), world)
        lr = lr_at(step, cfg, horizon, elapsed / (cfg.minutes * 60) if on_clock else None)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for m, b in enumerate(micro):
            sync = contextlib.nullcontext() if world == 1 or m == len(micro) - 1 else net.no_sync()
            with sync, autocast(device, precision):
                nll = token_nll_sum(net, *(torch.from_numpy(a).to(device) for a in
                                           (b.input_ids, b.position_ids, b.labels)))
                (nll * world / max(total, 1.0)).backward()
            loss_sum += float(nll.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss = _reduce(loss_sum, world) / max(total, 1.0)
        text_targets += sum(to_batch(*(a[None] for a in blk)).targets for blk in blocks[:n_text])
        all_targets += int(total)
        step, seen = step + 1, seen + gb * ctx_len
        train_s += time.time() - t0
        losses.append(loss)
        at_end = not on_clock and step == horizon
        if cfg.eval_every and (step % cfg.eval_every == 0 or at_end):
            val = validation_loss(model, data, cfg, device, precision, rank, world)
            last_val = (step, val)
        if log is not None and (step % cfg.log_every == 0 or at_end or val is not None):
            row = {"step": step, "loss": loss, "lr": lr, "tokens": seen, "target_tokens": all_targets,
                   "grad_norm": grad_norm,
                   "tokens_per_s": gb * ctx_len / max(time.time() - t0, 1e-9), "train_seconds": round(train_s, 3)}
            log.write({**row, **({"val_loss": val} if val is not None else {})})
        val = None
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)
        if step % cfg.checkpoint_every == 0 or at_end:
            _checkpoint(out, step, model, tok, meta, opt, cfg, rank, world, horizon=horizon, tokens=seen,
                        text_targets=text_targets, targets=all_targets, train_seconds=train_s, precision=precision)
    if bar is not None:
        bar.close()
    # the loop's own last validation, when it ran at this very step (a held-out pass is costly for a 135M LM on CPU)
    final_val = last_val[1] if last_val[0] == step else validation_loss(model, data, cfg, device, precision, rank, world)
    if step > start and step % cfg.checkpoint_every and (on_clock or step != horizon):  # stopped by the clock: keep the state
        _checkpoint(out, step, model, tok, meta, opt, cfg, rank, world, horizon=horizon, tokens=seen,
                    text_targets=text_targets, targets=all_targets, train_seconds=train_s, precision=precision)
    if rank == 0:
        save_model(out, model, tok, meta)
        if log is not None:
            if final_val is not None:
                log.write({"step": step, "tokens": seen, "val_loss": final_val, "final": True})
            log.close()
        plot_metrics(out)
    _barrier(world)
    return {"steps": step, "resumed_from": start, "stopped_by": reason, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "losses": losses, "val_loss": final_val, "tokens": seen,
            "tokens_per_s": (seen - int(state.get("tokens", 0))) / max(train_s - float(state.get("train_seconds", 0)), 1e-9),
            "seconds": train_s, "horizon": horizon, "precision": precision, "init": meta["init"],
            "params": count_params(model), "text_token_share": text_targets / max(all_targets, 1), "out": str(out)}


def _checkpoint(out, step, model, tok, meta, opt, cfg, rank, world, **state) -> None:
    if rank == 0:
        save_checkpoint(out, step, model, tok, meta, opt, state, cfg.keep_last)
    _barrier(world)


def _horizon(cfg: TrainConfig, net, data: PackedBlocks, device, precision: str, gb: int, ctx_len: int,
             world: int) -> int:
    """Steps the cosine schedule spans: from steps/tokens, else estimated from minutes and the faster of two
    timed micro-batches after an untimed one (the first pays for allocation and thread start-up)."""
    if cfg.steps:
        return int(cfg.steps)
    if cfg.tokens:
        return max(1, math.ceil(cfg.tokens / (gb * ctx_len)))
    b = to_batch(*(np.stack(c) for c in zip(*[blk for blk, _ in zip(data.stream(0), range(cfg.batch_size))])))
    times = []
    for _ in range(3):
        t0 = time.time()
        with autocast(device, precision):
            token_nll_sum(net, *(torch.from_numpy(a).to(device) for a in (b.input_ids, b.position_ids, b.labels))).backward()
        net.zero_grad(set_to_none=True)
        times.append(time.time() - t0)
    per_step = _reduce(min(times[1:]) * cfg.grad_accum, world, "max")
    return max(1, int(cfg.minutes * 60 / per_step))


def _progress(total: int, start: int):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", disable=not sys.stderr.isatty())


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) in this process, or on ``cfg.workers`` Ray Train workers."""
    if cfg.workers > 1:
        from .ray_train import train_distributed

        return train_distributed(cfg, run)
    return run(cfg)
