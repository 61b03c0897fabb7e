"""Shared fixtures. Ray costs seconds to start, so the tests share ONE real Ray cluster per
session: `ray start --head --block` on loopback (owned by this process, stopped at the end),
which the in-process tests join with ray.init and the CLI tests join with --address.

The head keeps its files in a temp dir of its own, so it never becomes the machine's
"current cluster" (/tmp/ray/ray_current_cluster): a user's bare ray.init() after the tests
would try to join it there, dead, and hang."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
    temp_dir = tempfile.mkdtemp(prefix=f"dpvray{port}_", dir="/tmp")  # short: socket paths have a limit
    env = {**os.environ, **RAY_TEST_ENV}
    os.environ.update(RAY_TEST_ENV)
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--port", str(port), "--num-cpus", "4",
         "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         "--object-store-memory", str(200 * 1024 * 1024), "--temp-dir", temp_dir],
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
    stop_head(proc)
    shutil.rmtree(temp_dir, ignore_errors=True)


def stop_head(proc: subprocess.Popen, grace: float = 40) -> None:
    """Stop a `ray start --block` started with start_new_session: SIGTERM stops its
    processes (and only them); whatever is left after `grace` seconds is killed."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its raylet, GCS and workers share its group
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """The test process itself connected to the session's cluster."""
    import ray

    ray.init(address=ray_cluster, log_to_driver=False)
    yield ray
    ray.shutdown()
