"""Executors run a recipe's stages over input shards; each shard is written where it was computed.

Why workers write: a shard is read, run through the stages and written (temporary name + rename, then its
marker: ``shards.write_shard``) by the process that computed it, and the driver only receives the marker's
counts and per-stage metrics. So the driver's memory does not grow with the corpus, and shards finish in any
order (no global ordering: one slow shard holds back nothing); rows inside a shard keep input order (``_seq``).

Why one batching for both executors: a shard is cut into chunks of ``CHUNK_ROWS`` input rows (by ``_seq``), and
each chunk goes through the stages in batches of the stage's ``batch_size``. Both executors, and every split of
the stages into Ray steps, cut the same way, so they give the same rows (hence the same bytes) whatever a stage
does with the batch it gets.

``RayExecutor``: one Ray Data graph whose rows are shards. Consecutive CPU stages run fused in one task (their
objects built once per worker process and cached, so models load once per worker); a GPU stage - or any stage
given ``concurrency`` - runs as an actor pool with ``num_gpus`` per actor and receives each shard as one Arrow
IPC buffer (one row, so Ray Data can never split a shard between calls). The last step writes the shard.
``LocalExecutor`` does the same in this process, shard by shard: debugging, tiny inputs, benchmark baselines.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..manifests.schema import ERROR_COLUMN
from .recipe import StageSpec
from .registry import load_code, resolve
from .shards import InputShard, write_shard

CHUNK_ROWS = 16  # input rows that go through all stages together (the local executor's memory bound)
_STEPS: dict[str, "Steps"] = {}  # per worker process: stage objects (models) built once
log = logging.getLogger("slmfactory.pipelines")
Metrics = dict[str, list[float]]  # stage name -> [rows_in, rows_out, errors, busy_s]


def build_stage(spec: StageSpec) -> Any:
    """The stage object: a registered stage, or code the user allowed (``allowed`` is set only by the recipe
    loader, after checking ``--allow-code``)."""
    cls = load_code(spec.uses) if spec.allowed else resolve(spec.uses)
    return cls(**spec.params)


class Steps:
    """Consecutive stages of a recipe, run over one shard's rows chunk by chunk, counting per stage."""

    def __init__(self, specs: list[StageSpec], last: bool, stages: list[Any] | None = None):
        self.specs, self.last = specs, last  # last: the recipe's final stage is here (drop transient columns)
        self.stages = stages if stages is not None else [build_stage(s) for s in specs]

    def run(self, table: pa.Table, metrics: Metrics) -> pa.Table:
        pieces = []
        for chunk in chunks(table, CHUNK_ROWS):
            for k, (spec, stage) in enumerate(zip(self.specs, self.stages)):
                drop = self.last and k == len(self.stages) - 1
                chunk = _apply(stage, chunk, spec.batch_size or CHUNK_ROWS, drop, metrics.setdefault(spec.name, [0] * 4))
            pieces.append(chunk)
        return pa.concat_tables(pieces, promote_options="permissive") if pieces else table


def chunks(table: pa.Table, rows: int) -> list[pa.Table]:
    """Cut a shard (sorted by ``_seq``) into the rows that came from each run of ``rows`` input rows. Every input
    row leaves at least one output row (stages reject, never drop), so the smallest ``_seq`` is the shard's first."""
    if table.num_rows == 0 or "_seq" not in table.column_names:
        return [table] if table.num_rows else []
    seq = table.column("_seq").to_numpy()
    key = (seq - seq.min()) // rows
    cuts = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), table.num_rows]
    return [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


def _apply(stage: Any, part: pa.Table, batch_size: int, drop: bool, m: list[float]) -> pa.Table:
    t0 = time.perf_counter()
    pieces = [stage.apply_table(part.slice(j, batch_size), drop_transient=drop)
              for j in range(0, part.num_rows, batch_size)]
    m[3] += time.perf_counter() - t0
    out = pa.concat_tables(pieces, promote_options="permissive") if pieces else part
    dead_in, dead_out = _dead(part), _dead(out)
    m[0] += part.num_rows - dead_in
    m[1] += out.num_rows - dead_out
    m[2] += dead_out - dead_in  # rows this stage rejected (rejected rows pass later stages untouched)
    return out


def _dead(table: pa.Table) -> int:
    if ERROR_COLUMN not in table.column_names:
        return 0
    return sum(1 for v in table.column(ERROR_COLUMN).to_pylist() if v)


def finish(out: Path, shard: InputShard, table: pa.Table, fp: str, metrics: Metrics) -> dict[str, Any]:
    """Write the shard and return what the driver collects: the marker's counts plus per-stage metrics."""
    state = write_shard(out, shard, table, fp)
    keep = ("inputs", "rows", "errors", "hours", "errors_by_stage", "writer")
    return {"index": shard.index, **{k: state[k] for k in keep}, "stages": metrics}


def _set_threads(num_cpus: float) -> None:
    n = max(1, int(num_cpus))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except Exception:  # noqa: BLE001 - torch is optional for pure-CPU stages
        pass


def fit_actor_cpus(specs: list[StageSpec], cluster_cpus: float) -> dict[str, float]:
    """CPUs each actor-pool stage may reserve so that task stages can still be scheduled.

    Why: actors hold their CPUs for their whole life. On a 2-CPU machine an actor asking for 2 CPUs
    leaves none for the decode tasks that feed it, and the graph waits forever. We scale actor
    reservations down (the stage still sets its torch threads from its own ``num_cpus``) and say so.
    """
    actors = [s for s in specs if _is_actor(s)]
    tasks = [s for s in specs if not _is_actor(s)]
    need_tasks = max([s.num_cpus for s in tasks], default=0.0) + 0.25  # + headroom: reading, writing
    reserved = sum(s.num_cpus * int(s.concurrency or 1) for s in actors)
    room = cluster_cpus - need_tasks
    if not actors or reserved <= room:
        return {}
    scale = max(room, 0.1 * len(actors)) / reserved
    out = {s.name: round(max(0.05, s.num_cpus * scale), 2) for s in actors}
    log.info("actor stages ask for %.1f CPUs but the cluster has %.1f and task stages need %.2f: "
             "reserving %s instead", reserved, cluster_cpus, need_tasks, out)
    return out


def _is_actor(spec: StageSpec) -> bool:
    return bool(spec.num_gpus or spec.concurrency)


class LocalExecutor:
    """Same stages, one process, shard by shard; this process writes the shards."""

    name = "local"

    def __init__(self, stages: list[StageSpec]):
        self.steps = Steps(stages, last=True)

    def run(self, shards: list[InputShard], out: Path, fp: str) -> Iterator[dict[str, Any]]:
        for shard in shards:
            metrics: Metrics = {}
            yield finish(out, shard, self.steps.run(pq.read_table(shard.path), metrics), fp, metrics)


class ShardStep:
    """One step of the Ray graph over whole shards (one per row): read (first step), run its stages, then either
    hand the shard on as an Arrow IPC buffer or, as the last step, write it and return its counts."""

    def __init__(self, specs_json: str, first: bool, final: bool, out: str, fp: str):
        key = f"{final}:{specs_json}"
        if key not in _STEPS:
            specs = [StageSpec(**d) for d in json.loads(specs_json)]
            _set_threads(max([s.num_cpus for s in specs], default=1.0))
            _STEPS[key] = Steps(specs, last=final)
        self.steps, self.first, self.final, self.out, self.fp = _STEPS[key], first, final, Path(out), fp

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: dict[str, list[Any]] = {}
        for i in range(batch.num_rows):
            shard = InputShard(*(batch.column(c)[i].as_py() for c in ("index", "path", "digest", "rows")))
            metrics = json.loads(batch.column("metrics")[i].as_py()) if not self.first else {}
            table = pq.read_table(shard.path) if self.first else pa.ipc.open_stream(
                batch.column("table")[i].as_buffer()).read_all()
            table = self.steps.run(table, metrics)
            if self.final:
                rows.setdefault("result", []).append(json.dumps(finish(self.out, shard, table, self.fp, metrics)))
                continue
            for c, v in (("index", shard.index), ("path", shard.path), ("digest", shard.digest), ("rows", shard.rows),
                         ("table", _ipc(table)), ("metrics", json.dumps(metrics))):
                rows.setdefault(c, []).append(v)
        if "table" in rows:  # batch_size=1: one shard per call, so no concatenation (no copy) in practice
            rows["table"] = rows["table"][0] if len(rows["table"]) == 1 else pa.concat_arrays(rows["table"])
        return pa.table(rows) if rows else pa.table({"result": pa.array([], pa.string())})


def run_step(batch: pa.Table, **kw: Any) -> pa.Table:
    """Ray task body (stage objects cached per worker process by ``ShardStep``)."""
    return ShardStep(**kw)(batch)


def _ipc(table: pa.Table) -> pa.Array:
    """One shard as a one-element large_binary array over the IPC stream buffer (no further copy)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    buf = sink.getvalue()
    offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int64).tobytes())
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, buf])


def _quiet_ray_data(ctx: Any) -> None:
    """Keep Ray Data's per-operator progress off the console unless ``SLMFACTORY_VERBOSE=1``: our own progress
    display (``progress.py``) names our stages and counts rows; Ray's names internal functions."""
    if os.environ.get("SLMFACTORY_VERBOSE") == "1":
        return
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def step_groups(specs: list[StageSpec]) -> list[list[StageSpec]]:
    """Consecutive task stages fuse into one step; each actor-pool stage is a step of its own."""
    groups: list[list[StageSpec]] = []
    for s in specs:
        if _is_actor(s) or not groups or _is_actor(groups[-1][0]) or s.resources != groups[-1][-1].resources:
            groups.append([s])
        else:
            groups[-1].append(s)
    return groups or [[]]


class RayExecutor:
    """One streaming Ray Data graph over all pending shards; workers write them, in whatever order they finish."""

    name = "ray"

    def __init__(self, stages: list[StageSpec]):
        self.specs = stages

    def run(self, shards: list[InputShard], out: Path, fp: str) -> Iterator[dict[str, Any]]:
        import ray

        ctx = ray.data.DataContext.get_current()
        kept = ctx.execution_options.preserve_order  # other Ray Data users in this process (hooks) keep theirs
        ctx.execution_options.preserve_order = False
        _quiet_ray_data(ctx)
        items = [{"index": s.index, "path": s.path, "digest": s.digest, "rows": s.rows} for s in shards]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        cpus = float(ray.cluster_resources().get("CPU", 1))
        reserve = fit_actor_cpus(self.specs, cpus)
        groups = step_groups(self.specs)
        for k, group in enumerate(groups):
            kw = {"specs_json": json.dumps([s.__dict__ for s in group], sort_keys=True, default=str),
                  "first": k == 0, "final": k == len(groups) - 1, "out": str(out), "fp": fp}
            common = dict(batch_size=1, batch_format="pyarrow", zero_copy_batch=True,
                          num_cpus=max([reserve.get(s.name, s.num_cpus) for s in group], default=1.0))
            if group and group[0].resources:
                common["resources"] = dict(group[0].resources)
            if group and _is_actor(group[0]):
                if group[0].num_gpus:
                    common["num_gpus"] = group[0].num_gpus
                ds = ds.map_batches(ShardStep, fn_constructor_kwargs=kw, **common,
                                    compute=ray.data.ActorPoolStrategy(size=int(group[0].concurrency or 1)))
            else:
                ds = ds.map_batches(run_step, fn_kwargs=kw, compute=ray.data.TaskPoolStrategy(),  # unsized: nodes that join later get work
                                    **common)
        batches = ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0)
        try:
            for batch in batches:
                for result in batch.column("result").to_pylist():
                    yield json.loads(result)
        finally:  # closed early (the driver stops): Ray Data shuts its execution down, cancelling tasks in flight
            getattr(batches, "close", lambda: None)()
            ctx.execution_options.preserve_order = kept
