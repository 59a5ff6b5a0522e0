"""Clean up the Ray processes a killed run left behind: the embedded Ray of an earlier driver of OUR output folder.

Why: the embedded Ray (``ray_setup.init_ray``) shares fate with its driver for most processes (GCS, raylet,
workers die with it), but not all: after ``kill -9`` of the driver, Ray 2.60's dashboard agent and runtime-env
agent are re-parented to init and live on, holding ports, memory and their log files (measured: both survive
indefinitely). A re-run into the same folder must not pile up a new pair each time.

How it stays safe on a machine shared with other runs (``ray stop`` would kill every Ray on the machine):
- the runner records, right after starting the embedded Ray, ``OUT/.ray_session.json``: this host, the
  driver's pid and start time, the session directory (``/tmp/ray/session_<time>_<driver pid>``, unique per
  embedded Ray) and the pids + start times of the node's processes at that moment;
- the next run, holding ``OUT/.lock`` (so no other driver of this folder is alive), kills only processes of
  this user that are either recorded (same pid AND same start time: a reused pid is never hit) or whose
  command line or open files name that session directory (Ray's processes keep their log files in it open,
  even after ``setproctitle`` renamed them ``ray::DashboardAgent``). A session of a driver that is still
  alive, or of another host, is left alone. SIGTERM first, SIGKILL after a grace period.
A run against a cluster (``--address``) records nothing: that cluster is not ours to clean.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import psutil

SESSION_FILE = ".ray_session.json"
log = logging.getLogger("slmfactory.pipelines")


def record_session(out: Path) -> dict[str, Any] | None:
    """Write ``OUT/.ray_session.json`` for the embedded Ray this process started (call right after ``init_ray``).
    Returns what was recorded, or None when this process did not start a local Ray (a cluster run)."""
    try:
        import ray

        node = ray._private.worker._global_node  # the node this driver started; no public API names its session dir
        session_dir = node.get_session_dir_path() if node is not None and node.head else None
    except (ImportError, AttributeError):
        return None
    if not session_dir or not str(session_dir).endswith(f"_{os.getpid()}"):
        return None  # not an embedded Ray of this driver (Ray names the session after the starting pid)
    pids = [p.process.pid for procs in node.all_processes.values() for p in procs if p.process is not None]
    procs = []
    for pid in pids:  # the node's processes and their children now (agents are the raylet's children)
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.Error:
            continue
    info = {"host": socket.gethostname(), "driver_pid": os.getpid(), "driver_started": _started(os.getpid()),
            "session_dir": str(session_dir), "pids": sorted({(p.pid, _started(p.pid)) for p in procs} - {(0, 0.0)}),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = Path(out) / f"{SESSION_FILE}.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, Path(out) / SESSION_FILE)
    return info


def clean_orphans(out: Path, grace_s: float = 2.0) -> list[int]:
    """Kill what is left of the embedded Ray recorded in ``OUT/.ray_session.json`` (module docstring) and remove
    the record. Call with ``OUT/.lock`` held, before starting a new Ray. Returns the pids that were ended."""
    path = Path(out) / SESSION_FILE
    try:
        info = json.loads(path.read_text())
        session_dir, driver = str(info["session_dir"]), int(info["driver_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if info.get("host") != socket.gethostname():
        return []  # another machine's run (OUT on shared storage): its processes are not visible here
    if _started(driver) == info.get("driver_started"):  # its driver lives: this process (a second run in one
        if driver != os.getpid():                        # Python session) or another: nothing is orphaned
            log.warning("%s: the Ray session of pid %d is still running; not cleaning it up", path, driver)
        return []
    victims = leftover_processes(session_dir, [tuple(x) for x in info.get("pids", [])])
    for p in victims:
        _signal(p, "terminate")
    _, alive = psutil.wait_procs(victims, timeout=grace_s)
    for p in alive:
        _signal(p, "kill")
    psutil.wait_procs(alive, timeout=grace_s)
    if victims:
        log.warning("ended %d Ray process(es) a killed run left behind (session %s): %s", len(victims), session_dir,
                    ", ".join(f"{p.pid}" for p in victims))
    path.unlink(missing_ok=True)
    return [p.pid for p in victims]


def leftover_processes(session_dir: str, recorded: list[tuple[int, float]] = ()) -> list[psutil.Process]:
    """This user's live processes that belong to ``session_dir``: recorded ones (pid + start time match), or
    ones whose command line or open files name the folder. Never this process or its parents."""
    me, uid = os.getpid(), os.getuid()
    mine = {me, *(p.pid for p in psutil.Process(me).parents())}
    want = {int(pid): float(t) for pid, t in recorded}
    prefix = session_dir.rstrip("/") + "/"
    found = []
    for p in psutil.process_iter(["pid", "uids", "cmdline", "create_time"]):
        try:
            if p.pid in mine or p.info["uids"] is None or p.info["uids"].real != uid:
                continue
            if want.get(p.pid) == p.info["create_time"] or _names(p, session_dir, prefix):
                found.append(p)
        except psutil.Error:
            continue
    return found


def _names(p: psutil.Process, session_dir: str, prefix: str) -> bool:
    if any(session_dir in a for a in p.info["cmdline"] or ()):
        return True
    try:
        return any(f.path.startswith(prefix) for f in p.open_files())
    except psutil.Error:
        return False


def _started(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _signal(p: psutil.Process, how: str) -> None:
    try:
        getattr(p, how)()
    except psutil.Error:
        pass
