"""A real two-node Ray cluster on loopback, a node lost mid-stage, and the orphans of a killed driver.

Cluster: `ray start --head` (node "a": 1 CPU, custom resource node_a) plus `ray start --address` (node "b": 1 CPU,
node_b), each in its own temp dir and process session; `slmfactory run RECIPE --address 127.0.0.1:PORT` in a
subprocess. Audio: espeak-ng speech (``generate.make_folder``), one file per shard. The recipe is
``decode`` plus a test stage (``mark``, allowed with --allow-code) that notes which node ran it and sleeps, so
the test sees work start on node b and then ``kill -9``s node b's raylet mid-stage. Ray retries the lost tasks;
the lost shard is redone on node a. Stage placement: 1 CPU per node, two tasks in flight, and the test stage
on node a waits until node b has work, so both nodes take part. When the recipe loader knows per-stage
``resources:`` the recipe also pins decode to node_a and the mark stage to node_b (each shard crosses nodes):
then only a replacement node with node_b (what the cluster autoscaler starts for a lost node) can finish the
mark stage, and the test starts one.
The rows must equal a single-process (local executor) run's rows.

Only processes this test started are ever signalled: the nodes' process groups, and processes naming their
temp dirs (``ray_orphans.leftover_processes``). ``ray stop`` is never used (it ends every Ray on the machine).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

BIN = Path(sys.executable).parent
MARK_STAGE = '''
import os, time
from pathlib import Path
from slmfactory.stages.base import Stage

class NodeMark(Stage):
    """Test stage: writes MARKS/<node tag>-<pid>-<first id>; rows pass unchanged. On node "b" it then holds
    (until the test kills the node: mid-stage by construction); on node "a" it first waits until node "b" has
    work, so both nodes take part whatever the scheduler and the machine's load do."""
    name = "mark"

    def __init__(self, marks: str, hold_s: float = 0.0):
        self.marks, self.hold_s = Path(marks), float(hold_s)

    def process(self, rows):
        tag = os.environ.get("SLMF_TEST_NODE", "local")
        (self.marks / f"{tag}-{os.getpid()}-{rows[0]['id']}").touch()
        end = time.time() + self.hold_s
        while tag == "a" and time.time() < end and not any(m.name.startswith("b-") for m in self.marks.iterdir()):
            time.sleep(0.05)
        if tag == "b":
            time.sleep(self.hold_s)
        return rows
'''


# `ray start --address` on Linux rewrites a loopback GCS address to the machine's IP (services.
# resolve_ip_for_localhost), and Ray's loopback mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which the head and the
# driver use) refuses to start a joining node. This launcher runs the same `ray start` CLI with the loopback
# address kept as given, so every process of the test cluster binds and registers 127.0.0.1 only.
JOIN_ON_LOOPBACK = ("import sys; import ray._private.services as s; s.resolve_ip_for_localhost = lambda h: h; "
                    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recipe_stage_resources() -> bool:
    from slmfactory.pipelines.recipe import STAGE_KEYS

    return "resources" in STAGE_KEYS


class Nodes:
    """Ray nodes started by this test (``ray start --block`` in new sessions); stopped by process group."""

    def __init__(self, root: Path, code_dir: Path):
        self.root, self.code_dir, self.procs, self.temps = root, code_dir, {}, []
        self.gcs = _free_port()

    def start(self, tag: str, resources: dict[str, float], head: bool = False, wait: bool = True) -> subprocess.Popen:
        temp = Path("/tmp") / f"mn{os.getpid()}{tag}"  # short: Ray's socket paths have a length limit
        self.temps.append(temp)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "disabled",
               "SLMF_TEST_NODE": tag, "PYTHONPATH": str(self.code_dir), "RAY_DISABLE_USAGE_STATS": "1"}
        env.pop("RAY_ADDRESS", None)
        args = [str(BIN / "ray"), "start", "--block", "--num-cpus=1", f"--resources={json.dumps(resources)}",
                f"--temp-dir={temp}", "--disable-usage-stats", f"--dashboard-agent-listen-port={_free_port()}",
                f"--dashboard-agent-grpc-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
                f"--metrics-export-port={_free_port()}"]
        if head:  # loopback only: Ray keeps 127.0.0.1 when its "cluster" knob is off (pipelines/ray_setup.py)
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            args += ["--head", f"--port={self.gcs}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                     f"--ray-client-server-port={_free_port()}"]
        else:  # joins at 127.0.0.1 (see JOIN_ON_LOOPBACK), taking the IP it reaches the GCS from: 127.0.0.1
            args = [sys.executable, "-c", JOIN_ON_LOOPBACK, *args[1:], f"--address=127.0.0.1:{self.gcs}"]
        log = open(self.root / f"node_{tag}.log", "w")
        proc = subprocess.Popen(args, env=env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[tag] = proc
        deadline = time.time() + 120  # generous: a loaded 2-core machine starts Ray slowly
        while wait and "Ray runtime started" not in (self.root / f"node_{tag}.log").read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"node {tag} did not start:\n{(self.root / f'node_{tag}.log').read_text()[-3000:]}")
            time.sleep(0.2)
        return proc

    def raylet(self, tag: str) -> psutil.Process:
        kids = psutil.Process(self.procs[tag].pid).children(recursive=True)
        return next(p for p in kids if p.name() == "raylet")

    def stop(self) -> None:
        from slmfactory.pipelines.ray_orphans import leftover_processes

        for proc in self.procs.values():  # SIGKILL: nothing of a test cluster needs a graceful end
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        for temp in self.temps:  # workers in their own process groups: found by their files in our temp dirs
            for p in leftover_processes(str(temp)):
                p.kill()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture()
def folder(tmp_path, require_espeak) -> Path:
    from slmfactory.manifests import generate

    return generate.make_folder(tmp_path / "corpus", n=6)


def _write_recipe(tmp_path: Path, corpus: Path, pin: bool) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mn_stage.py").write_text(MARK_STAGE)
    pin_a = "\n            resources: {node_a: 1}" if pin else ""  # stage A on node a, stage B (mark) on node_b nodes
    pin_line = "\n    resources: {node_b: 1}" if pin else ""
    recipe = tmp_path / "multinode.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: multinode
        vars: {{out: {tmp_path / 'out'}, marks: {tmp_path / 'marks'}, hold_s: 120}}
        input: {{kind: folder, root: {corpus}}}
        output: ${{out}}
        shard_size: 1
        stages:
          - uses: decode{pin_a}
          - name: mark
            uses: "mn_stage:NodeMark"
            params:
              marks: ${{marks}}
              hold_s: ${{hold_s}}""") + pin_line + "\n")
    return recipe


def _rows(out: Path) -> list[dict]:
    rows = [r for f in sorted((out / "manifest").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


@pytest.mark.slow
def test_two_node_cluster_survives_losing_a_raylet_mid_stage(tmp_path, folder, monkeypatch):
    pin = _recipe_stage_resources()
    recipe = _write_recipe(tmp_path, folder, pin)
    marks = tmp_path / "marks"
    marks.mkdir()
    nodes = Nodes(tmp_path, tmp_path / "code")
    try:
        nodes.start("a", {"node_a": 2}, head=True)
        nodes.start("b", {"node_b": 2})  # up before the driver: RayExecutor sizes its task pool from the CPUs it sees
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "code"), "RAY_AUTH_MODE": "disabled",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # the driver keeps the loopback address too
        env.pop("RAY_ADDRESS", None)
        with open(tmp_path / "driver.log", "w") as log:
            driver = subprocess.Popen([str(BIN / "slmfactory"), "run", str(recipe), "--address",
                                       f"127.0.0.1:{nodes.gcs}", "--executor", "ray", "--allow-code",
                                       "mn_stage:NodeMark"], env=env, cwd=tmp_path, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 180
            while not any(m.name.startswith("b-") for m in marks.iterdir()):  # node b is inside the stage now
                assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
                assert time.time() < deadline, "no work reached node b"
                time.sleep(0.05)
            nodes.raylet("b").kill()  # kill -9, mid-stage
            if pin:  # only node_b nodes may run the mark stage: the autoscaler's part, a replacement node
                nodes.start("b2", {"node_b": 2}, wait=False)
            rc = driver.wait(timeout=300)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        said = (tmp_path / "driver.log").read_text()
        assert rc == 0, said[-4000:]
    finally:
        nodes.stop()
    out = tmp_path / "out"
    run = json.loads((out / "run.json").read_text())
    assert run["shards"]["total"] == 6 and run["counts"]["errors"] == 0
    by_node = {m.name.split("-", 1)[0] for m in marks.iterdir()}
    assert "b" in by_node and by_node & {"a", "b2"}, by_node  # both nodes did work; b's shard was redone
    if pin:
        assert "a" not in by_node and "b2" in by_node

    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    from slmfactory.pipelines.runner import run_recipe

    base = tmp_path / "single"
    run_recipe(recipe, {"out": str(base), "hold_s": 0, "marks": str(marks)}, executor="local",
               allow_code=["mn_stage:NodeMark"])
    assert _rows(out) == _rows(base) and len(_rows(out)) == 6


DRIVER = '''
import sys, time
from pathlib import Path
from slmfactory.pipelines.ray_setup import init_ray
from slmfactory.pipelines.ray_orphans import record_session
import ray

init_ray(None)
print(record_session(Path(sys.argv[1]))["session_dir"], flush=True)
print("ready", flush=True)
time.sleep(600)
'''


def test_orphans_of_a_killed_driver_are_cleaned_up(tmp_path):
    from slmfactory.pipelines.ray_orphans import SESSION_FILE, clean_orphans, leftover_processes

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(out)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    session = None
    try:
        session = driver.stdout.readline().strip()
        assert driver.stdout.readline().strip() == "ready", session
        assert clean_orphans(out) == [] and (out / SESSION_FILE).exists()  # its driver is alive: left alone
        recorded = json.loads((out / SESSION_FILE).read_text())["pids"]
        assert any(psutil.Process(p).name() == "raylet" for p, _ in recorded)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        time.sleep(1.0)  # let the processes that share the driver's fate go
        left = leftover_processes(session)
        assert left, "nothing of the killed driver's Ray survived (Ray now cleans up after itself?)"
        ended = clean_orphans(out)
        assert set(ended) >= {p.pid for p in left}
        assert leftover_processes(session) == [] and not (out / SESSION_FILE).exists()
        assert not any(psutil.pid_exists(p) and psutil.Process(p).create_time() == t for p, t in recorded)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        if session:
            for p in leftover_processes(session):
                p.kill()


def test_a_live_driver_s_own_ray_is_never_cleaned_up(tmp_path, ray_local):
    """Two runs in one Python session (a notebook, this test session): the second run's clean-up must not end the
    Ray the first one recorded: its driver is this very process, alive. (Killing it took pytest down with it.)"""
    from slmfactory.pipelines.ray_orphans import SESSION_FILE, clean_orphans, record_session

    info = record_session(tmp_path)
    if info is None:  # the session's Ray was not started by this process (e.g. RAY_ADDRESS): nothing to check
        pytest.skip("this process did not start the embedded Ray")
    assert clean_orphans(tmp_path) == [] and (tmp_path / SESSION_FILE).exists()
    assert ray_local.get(ray_local.put(41)) + 1 == 42  # Ray still answers
