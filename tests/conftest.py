"""Shared fixtures. Ray costs seconds to start, so the tests share ONE real Ray cluster per
session: `ray start --head --block` on loopback (owned by this process, stopped at the end),
which the in-process tests join with ray.init and the CLI tests join with --address."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

# Both sides of the cluster must agree on token auth (DESIGN.md section 9); the test
# cluster lives on loopback, so it runs without.
RAY_TEST_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """Address HOST:PORT of a Ray head for this session, advertising 4 CPUs whatever the machine has."""
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port = free_port()
    env = {**os.environ, **RAY_TEST_ENV}
    os.environ.update(RAY_TEST_ENV)
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--port", str(port), "--num-cpus", "4",
         "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         "--object-store-memory", str(200 * 1024 * 1024)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("could not start a Ray head for the tests")
            time.sleep(0.5)
    yield address
    proc.terminate()  # --block: SIGTERM stops this head's processes (and only them)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """The test process itself connected to the session's cluster."""
    import ray

    ray.init(address=ray_cluster, log_to_driver=False)
    yield ray
    ray.shutdown()
