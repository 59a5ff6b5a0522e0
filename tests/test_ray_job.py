"""`ray job submit --working-dir . -- slmfactory run pipelines/ingest.yaml` against a local
`ray start --head` cluster, exactly as the README shows. Audio: generated podcast corpus (espeak-ng).

The head node runs in its own process session and is killed by process group at the end, so the
embedded Ray other tests use is not touched (`ray stop` would kill every Ray on the machine).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_job_submit_runs_a_recipe(corpora, tmp_path):
    gcs, dash, agent, agent_grpc, rt_agent, client, metrics = (_free_port() for _ in range(7))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "disabled",
           "RAY_DISABLE_USAGE_STATS": "1"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = Path("/tmp") / f"rayjob_{os.getpid()}"  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
                             "--include-dashboard=true", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
                             f"--temp-dir={temp_dir}", "--disable-usage-stats",
                             # the embedded Ray of other tests holds the default agent ports
                             f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
                             f"--runtime-env-agent-port={rt_agent}", f"--ray-client-server-port={client}",
                             f"--metrics-export-port={metrics}"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    out = tmp_path / "job_out"
    try:
        job = None
        for _ in range(20):  # the dashboard's job server and agent take a few seconds to come up
            job = subprocess.run([str(BIN / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dash}",
                                  "--working-dir", ".", "--", "slmfactory", "run", "pipelines/ingest.yaml",
                                  "kind=podcasts", f"root={corpora['podcasts']}", f"out={out}", "max_seconds=8"],
                                 env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
            said = job.stderr + job.stdout
            if not any(x in said for x in ("Failed to connect", "Connection refused", "No available agent",
                                           "try again later")):
                break
            time.sleep(2)
        assert job is not None and job.returncode == 0, (job.stdout[-3000:], job.stderr[-3000:])
        assert "succeeded" in job.stdout + job.stderr
        man = pl.read_parquet(str(out / "manifest" / "*.parquet"))
        assert man.height >= 10 and (out / "run.json").exists()
        # `--executor auto` picks Ray when RAY_ADDRESS is set (ray job submit sets it): the job must not run locally
        assert json.loads((out / "run.json").read_text())["executor"] == "ray"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
