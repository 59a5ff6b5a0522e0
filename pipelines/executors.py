"""Executors run a recipe's stages over input shards. Stages never see them (datatrove's split).

``RayExecutor`` builds one streaming Ray Data graph over all pending input shards: CPU stages run as
tasks (the stage object is built once per worker process and cached, so models load once per
worker without pinning CPUs), GPU stages - or any stage given ``concurrency`` - run as an actor
pool with ``num_gpus`` per actor. Order is preserved, so rows leave in input order and the driver
can close a shard as soon as a row of a later shard arrives.

``LocalExecutor`` runs the same stages in this process, shard by shard: for debugging, tiny inputs
and the benchmark baseline.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..manifests.schema import TRANSIENT_COLUMNS
from .recipe import StageSpec
from .registry import load_code, resolve

_STAGE_CACHE: dict[str, Any] = {}
log = logging.getLogger("slmfactory.pipelines")


def _read_shards(paths: pa.Table) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths.column("path").to_pylist()])


def build_stage(spec: StageSpec) -> Any:
    """The stage object: a registered stage, or code the user allowed (``allowed`` is set only by the recipe
    loader, after checking ``--allow-code``)."""
    cls = load_code(spec.uses) if spec.allowed else resolve(spec.uses)
    return cls(**spec.params)


def run_stage_on_table(table: pa.Table, spec_json: str, drop_transient: bool) -> pa.Table:
    """Ray task body: the stage object is cached per worker process (model loaded once)."""
    stage = _STAGE_CACHE.get(spec_json)
    if stage is None:
        spec = StageSpec(**json.loads(spec_json))
        _set_threads(spec.num_cpus)
        stage = _STAGE_CACHE[spec_json] = build_stage(spec)
    return stage.apply_table(table, drop_transient=drop_transient)


class StageActor:
    """Actor-pool form of a stage (GPU stages): built once per actor."""

    def __init__(self, spec_json: str, drop_transient: bool):
        spec = StageSpec(**json.loads(spec_json))
        _set_threads(spec.num_cpus)
        self.stage = build_stage(spec)
        self.drop_transient = drop_transient

    def __call__(self, table: pa.Table) -> pa.Table:
        return self.stage.apply_table(table, drop_transient=self.drop_transient)


def _set_threads(num_cpus: float) -> None:
    n = max(1, int(num_cpus))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except Exception:  # noqa: BLE001 - torch is optional for pure-CPU stages
        pass


def spec_json(spec: StageSpec) -> str:
    return json.dumps(spec.__dict__, sort_keys=True, default=str)


def fit_actor_cpus(specs: list[StageSpec], cluster_cpus: float) -> dict[str, float]:
    """CPUs each actor-pool stage may reserve so that task stages can still be scheduled.

    Why: actors hold their CPUs for their whole life. On a 2-CPU machine an actor asking for 2 CPUs
    leaves none for the decode tasks that feed it, and the graph waits forever. We scale actor
    reservations down (the stage still sets its torch threads from its own ``num_cpus``) and say so.
    """
    actors = [s for s in specs if s.num_gpus or s.concurrency]
    tasks = [s for s in specs if not (s.num_gpus or s.concurrency)]
    need_tasks = max([s.num_cpus for s in tasks], default=0.0) + 0.25  # + the shard reader
    reserved = sum(s.num_cpus * int(s.concurrency or 1) for s in actors)
    room = cluster_cpus - need_tasks
    if not actors or reserved <= room:
        return {}
    scale = max(room, 0.1 * len(actors)) / reserved
    out = {s.name: round(max(0.05, s.num_cpus * scale), 2) for s in actors}
    log.warning("actor stages ask for %.1f CPUs but the cluster has %.1f and task stages need %.2f: "
                "reserving %s instead", reserved, cluster_cpus, need_tasks, out)
    return out


class LocalExecutor:
    """Same stages, one process, shard by shard."""

    name = "local"

    def __init__(self, stages: list[StageSpec]):
        self.specs = stages
        self.stages = [build_stage(s) for s in stages]

    def run(self, shard_paths: list[str], batch_rows: int = 16) -> Iterator[pa.Table]:
        for path in shard_paths:
            table = pq.read_table(path)
            for i in range(0, table.num_rows, batch_rows):
                part = table.slice(i, batch_rows)
                for k, (spec, stage) in enumerate(zip(self.specs, self.stages)):
                    part = _apply_in_batches(stage, part, spec.batch_size or batch_rows,
                                             drop_transient=k == len(self.stages) - 1)
                yield part


def _apply_in_batches(stage: Any, part: pa.Table, batch_size: int, drop_transient: bool) -> pa.Table:
    pieces = [stage.apply_table(part.slice(j, batch_size), drop_transient=drop_transient)
              for j in range(0, part.num_rows, batch_size)]
    return pa.concat_tables(pieces, promote_options="permissive") if pieces else part


def _quiet_ray_data(ctx: Any) -> None:
    """Keep Ray Data's per-operator progress off the console unless ``SLMFACTORY_VERBOSE=1``.

    Why: on a non-interactive terminal Ray Data logs a progress block every few seconds; in the demo that was
    259 of 565 console lines, named after our internal functions, burying the run summaries. Warnings still show.
    """
    if os.environ.get("SLMFACTORY_VERBOSE") == "1":
        return
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class RayExecutor:
    """One streaming Ray Data graph over all pending shards."""

    name = "ray"

    def __init__(self, stages: list[StageSpec]):
        self.specs = stages

    def run(self, shard_paths: list[str], batch_rows: int = 16) -> Iterator[pa.Table]:
        import ray

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        _quiet_ray_data(ctx)
        # One block per input shard, read lazily by a task; order follows shard_paths.
        ds = ray.data.from_items([{"path": p} for p in shard_paths], override_num_blocks=len(shard_paths))
        ds = ds.map_batches(_read_shards, batch_size=1, batch_format="pyarrow", num_cpus=0.25)
        total_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        reserve = fit_actor_cpus(self.specs, float(ray.cluster_resources().get("CPU", 1)))
        for k, spec in enumerate(self.specs):
            last = k == len(self.specs) - 1
            common = dict(batch_size=spec.batch_size or batch_rows, batch_format="pyarrow", zero_copy_batch=True,
                          num_cpus=reserve.get(spec.name, spec.num_cpus))
            if spec.num_gpus:
                common["num_gpus"] = spec.num_gpus
            if spec.num_gpus or spec.concurrency:
                pool = ray.data.ActorPoolStrategy(size=int(spec.concurrency or 1))
                ds = ds.map_batches(StageActor, fn_constructor_kwargs={"spec_json": spec_json(spec),
                                                                       "drop_transient": last},
                                    compute=pool, **common)
            else:
                ds = ds.map_batches(run_stage_on_table, fn_kwargs={"spec_json": spec_json(spec),
                                                                   "drop_transient": last},
                                    compute=ray.data.TaskPoolStrategy(size=total_cpus), **common)
        if not self.specs:
            ds = ds.drop_columns([c for c in TRANSIENT_COLUMNS])  # pragma: no cover - recipes have stages
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=2):
            yield batch
