"""Train the bundled speech LM on packed shards (``OUT/packed``) — a trainer you can read in one sitting.

Reads ``input_ids``/``loss_mask``/``position_ids`` blocks and ``dataset_info.json`` written by the
interleaved recipe's packing hook. Defaults follow slamkit's recipe where it applies at small scale
(AdamW, lr 1e-3 cosine to 5e-5, 1% warm-up, grad clip 0.5; bf16 autocast on GPUs that support it).
Checkpoints are safetensors + JSON (no pickle), written atomically, and a run resumes from its last
checkpoint with the same data order (seeded shuffles per epoch).
"""
from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch

from .model import ModelConfig, SpeechLM, lm_loss


@dataclass
class TrainConfig:
    data: str  # folder with packed shard-*.parquet and dataset_info.json
    out: str
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_frac: float = 0.01
    weight_decay: float = 0.1
    grad_clip: float = 0.5
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    device: str = "auto"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (n_layer, n_embd, ...)


def load_blocks(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """All packed blocks as arrays (N, T); fine for the sizes this trainer is for (memory-map larger sets)."""
    files = sorted(glob.glob(str(Path(folder) / "*.parquet")))
    if not files:
        raise FileNotFoundError(f"{folder}: no packed shards; run the interleaved recipe (it writes OUT/packed)")
    info_path = Path(folder) / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    ids, mask, pos = [], [], []
    for f in files:
        t = pq.read_table(f, columns=["input_ids", "loss_mask", "position_ids"]).to_pydict()
        ids += t["input_ids"]
        mask += t["loss_mask"]
        pos += t["position_ids"]
    return (np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64), np.asarray(pos, dtype=np.int64), info)


def vocab_size_of(info: dict[str, Any], ids: np.ndarray) -> int:
    for key in ("vocab_size", "total_vocab_size"):
        if key in info:
            return int(info[key])
    if isinstance(info.get("vocab"), dict) and "size" in info["vocab"]:
        return int(info["vocab"]["size"])
    return int(ids.max()) + 1


def batches(n: int, batch_size: int, seed: int, start_step: int) -> Iterator[np.ndarray]:
    """Index batches over seeded per-epoch permutations; step k is the same batch in every run."""
    per_epoch = max(1, n // batch_size)
    step = start_step
    while True:
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng(seed + epoch).permutation(n)
        idx = perm[k * batch_size:(k + 1) * batch_size]
        if len(idx) < batch_size:  # tiny data: wrap around
            idx = np.resize(perm, batch_size)
        yield idx
        step += 1


def lr_at(step: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, cfg.steps - warm))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    ids, mask, pos, info = load_blocks(cfg.data)
    mcfg = ModelConfig(vocab_size=vocab_size_of(info, ids), context_length=int(ids.shape[1]), **cfg.model)
    device = pick_device(cfg.device)
    model = SpeechLM(mcfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = load_checkpoint(out, model, opt) if (out / "state.json").exists() else 0
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    log = open(out / "train_log.jsonl", "a")
    bar = _progress(cfg.steps, start) if progress else None
    history = []
    model.train()
    t0 = time.time()
    for step, idx in zip(range(start, cfg.steps), batches(len(ids), cfg.batch_size, cfg.seed, start)):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x, m, p = (torch.from_numpy(a[idx]).to(device) for a in (ids, mask, pos))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = lm_loss(model(x, p), x, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        history.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.write(json.dumps({"step": step, "loss": history[-1], "lr": lr_at(step, cfg)}) + "\n")
            log.flush()
        if bar is not None:
            bar.set_postfix(loss=f"{history[-1]:.3f}")
            bar.update(1)
        if (step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1:
            save_checkpoint(out, model, opt, step + 1, cfg, mcfg, info)
    if bar is not None:
        bar.close()
    log.close()
    return {"steps": cfg.steps, "resumed_from": start, "first_loss": history[0] if history else None,
            "last_loss": history[-1] if history else None, "seconds": time.time() - t0, "out": str(out)}


def _progress(total: int, start: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", disable=not sys.stderr.isatty())


# --- checkpoints: safetensors + JSON, atomic ------------------------------------------------------------
def save_checkpoint(out: Path, model: SpeechLM, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig,
                    mcfg: ModelConfig, info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    _atomic(out / "model.safetensors", lambda p: save_file(weights, str(p)))
    opt_tensors, opt_meta = {}, {}
    for i, (pid, st) in enumerate(opt.state_dict()["state"].items()):
        for name, val in st.items():
            if torch.is_tensor(val) and val.dim() > 0:
                opt_tensors[f"{pid}.{name}"] = val.detach().cpu().contiguous()
            else:
                opt_meta[f"{pid}.{name}"] = float(val)
    _atomic(out / "optimizer.safetensors", lambda p: save_file(opt_tensors, str(p)))
    state = {"step": step, "model": mcfg.to_dict(), "train": asdict(cfg), "optimizer_scalars": opt_meta,
             "dataset_info": info}
    _atomic(out / "state.json", lambda p: p.write_text(json.dumps(state, indent=1, default=str)))


def load_checkpoint(out: Path, model: SpeechLM, opt: torch.optim.Optimizer | None = None) -> int:
    from safetensors.torch import load_file

    state = json.loads((out / "state.json").read_text())
    weights = load_file(str(out / "model.safetensors"))
    weights["head.weight"] = weights["tok.weight"]
    model.load_state_dict(weights)
    if opt is not None and (out / "optimizer.safetensors").exists():
        tensors = load_file(str(out / "optimizer.safetensors"))
        sd = opt.state_dict()
        new_state: dict[int, dict[str, Any]] = {}
        for key, val in tensors.items():
            pid, name = key.split(".", 1)
            new_state.setdefault(int(pid), {})[name] = val
        for key, val in state["optimizer_scalars"].items():
            pid, name = key.split(".", 1)
            new_state.setdefault(int(pid), {})[name] = torch.tensor(val)
        sd["state"] = new_state
        opt.load_state_dict(sd)
    return int(state["step"])


def load_model(path: str | Path, device: str = "cpu") -> tuple[SpeechLM, dict[str, Any]]:
    """A trained model and its state.json (config, dataset_info) for generation and evaluation."""
    path = Path(path)
    if not (path / "state.json").exists():
        raise FileNotFoundError(f"{path}: no state.json; give the folder `slmfactory train` wrote")
    state = json.loads((path / "state.json").read_text())
    model = SpeechLM(ModelConfig(**state["model"]))
    load_checkpoint(path, model)
    return model.to(device).eval(), state


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
