"""Start or join Ray for a run: a cluster named by ``RAY_ADDRESS``/``--address``, or an embedded local Ray that
listens on the loopback address only.

Why apart from the runner: it is the one place that knows Ray's start-up knobs; its console output is kept in
``OUT/logs/ray.log`` by the caller (``progress.ray_logs``), and worker logs are sent to the driver so they land
there too (or on the console with ``SLMFACTORY_VERBOSE=1``).
"""
from __future__ import annotations

import os


def init_ray(address: str | None) -> None:
    """Connect to RAY_ADDRESS / ``address``, or start an embedded Ray that listens on 127.0.0.1 only.

    Why the environment variable: Ray replaces a loopback ``_node_ip_address`` by the machine's address on
    Linux (``services.resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; with it,
    the GCS, raylet, workers and agents (started from this environment) bind the loopback address only.
    """
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr:
        import ray

        if not ray.is_initialized():
            ray.init(address=addr, log_to_driver=True)
        return
    knob, old = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ[knob] = "0"  # read when ray is first imported, and by every Ray process started from here
    consts, saved = None, None
    try:
        import ray

        if ray.is_initialized():
            return
        try:
            from ray._private import ray_constants as consts

            saved, consts.ENABLE_RAY_CLUSTER = consts.ENABLE_RAY_CLUSTER, False
        except (ImportError, AttributeError):  # pragma: no cover - a Ray without the knob binds as it binds
            consts = None
        # embedded local Ray: no cluster needed, nothing reachable from the network
        # log_to_driver: worker output reaches this process, where progress.ray_logs files it in OUT/logs
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=True, configure_logging=True,
                 logging_level="warning")
    finally:
        if consts is not None:
            consts.ENABLE_RAY_CLUSTER = saved
        if old is None:
            os.environ.pop(knob, None)
        else:
            os.environ[knob] = old
