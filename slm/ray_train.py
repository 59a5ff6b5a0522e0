"""Many workers: the same training loop under Ray Train's ``TorchTrainer`` (DDP; gloo on CPUs, nccl on GPUs).

Why Ray Train: the pipelines already run on Ray, so a cluster that built the data can train on it; Ray
starts one process per worker, sets up ``torch.distributed`` and places workers on GPUs. Each worker runs
``train.run`` with its rank: it reads its slice of every global batch from the shared packed folder, DDP
averages the gradients, and rank 0 writes metrics, checkpoints and the final model into ``cfg.out`` (a path
all workers see: a shared filesystem on a multi-node cluster). Ray's own run folder goes to ``OUT/ray``.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable


def _worker_loop(config: dict[str, Any], run: Callable, config_cls: type) -> None:
    import ray.train

    ctx = ray.train.get_context()
    cfg = config_cls(**config)
    res = run(cfg, rank=ctx.get_world_rank(), world=ctx.get_world_size())
    if ctx.get_world_rank() == 0:
        import json

        (Path(cfg.out) / "ray_result.json").write_text(json.dumps(res, default=str))


def train_distributed(cfg, run: Callable, use_gpu: bool | None = None) -> dict[str, Any]:
    """Run ``run(cfg, rank, world)`` (``train.run``, passed in: this module does not import ``train``) on
    ``cfg.workers`` Ray Train workers (embedded local Ray unless RAY_ADDRESS is set)."""
    import functools
    import json

    import ray
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    gpu = torch.cuda.is_available() if use_gpu is None else use_gpu
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = {**asdict(cfg), "out": str(out), "data": str(Path(cfg.data).resolve()), "workers": cfg.workers,
              "progress": False}
    if config.get("text_corpus"):
        config["text_corpus"] = str(Path(config["text_corpus"]).resolve())
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=True,
                 configure_logging=False)
    per_worker = {"CPU": max(1, int(ray.available_resources().get("CPU", cfg.workers)) // cfg.workers)}
    if not cfg.threads and not gpu:
        config["threads"] = int(per_worker["CPU"])
    trainer = TorchTrainer(
        functools.partial(_worker_loop, run=run, config_cls=type(cfg)), train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=gpu,
                                     resources_per_worker=None if gpu else per_worker),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(storage_path=str(out / "ray"), name="train"),
    )
    trainer.fit()
    return json.loads((out / "ray_result.json").read_text())
