"""Joining a Ray cluster as a driver: the one `connect` of the cluster build and of sharded serving.

`connect(address)` keeps a driver of a cluster on 127.0.0.1 on loopback (settings.cluster_environment; Ray reads
that variable when it is imported, so a ray imported earlier is told directly), checks that something listens at
the address before Ray's own minutes of retries, and joins with the workers importing this checkout of exorag
(PYTHONPATH in the job's runtime environment). Failures are ClusterError. Deliberately left out: starting a
cluster (`ray start`; the tests' loopback cluster is tests/ray_cluster.py) and shutting down a driver (callers that
joined do it).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from exorag.errors import ClusterError
from exorag.settings import cluster_environment


def ray_module() -> Any:
    """`ray`, or ClusterError naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("ray is not installed: pip install -e '.[cluster]'") from None
    return ray


def package_path() -> str:
    """The folder holding this exorag package: workers import the same code (PYTHONPATH in the job's runtime env)."""
    return str(Path(__file__).resolve().parents[2])


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` unless this process already has; True when it joined now."""
    cluster_environment(address)
    ray = ray_module()
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # ray was imported before cluster_environment ran: Ray reads it then
    host, _, port = address.rpartition(":")
    try:  # Ray itself keeps retrying an address where nothing listens for minutes
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"no Ray cluster answers at {address!r} ({exc}); start one with `ray start --head` and "
                           "pass the HOST:PORT it prints") from None
    try:
        ray.init(address=address, namespace="exorag", runtime_env={"env_vars": {"PYTHONPATH": package_path()}},
                 logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address} ({exc}); start it with `ray start --head` "
                           "and pass its address") from exc
    return True
