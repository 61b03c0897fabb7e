"""Self-play on a real multi-node Ray cluster on this machine, with token auth on as
`ray start` has it once ~/.ray/auth_token exists: two `ray start --block` processes on
loopback (a head and a worker node), the main job joining with --address from a directory
that is not the repository.

The worker node stands for a machine without the repository: its Python has the editable
install of dpv hidden (a sitecustomize), so the actors on it run only because the job ships
dpv and selfplay to the nodes (runtime_env). These tests start their own clusters in
subprocesses with a HOME of their own: conftest turns token auth off for the pytest process
and its shared cluster, and nothing here touches /tmp/ray.

    python -m pytest -m slow -q tests/test_selfplay_cluster.py     # about 6 minutes
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from dpv.errors import CheckpointError
from selfplay.config import load_run_config
from selfplay.rundir import RunDir
from tests.conftest import free_port, stop_head
from tests.test_selfplay_run import TINY, buffer_rows

# Each test starts its own nodes (10-15 s each here) and runs the job through a loss: about
# three minutes apiece on this 2-core machine, so outside the default suite.
pytestmark = pytest.mark.slow

RAY = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
HIDE_REPO = ("import sys\n"  # what a machine without the repository sees: no dpv to import
             "sys.meta_path[:] = [f for f in sys.meta_path\n"
             "                    if not getattr(f, '__module__', '').startswith('__editable__')]\n")
ACTOR_TABLE = ("import json, ray\n"
               "ray.init(address='{address}', log_to_driver=False)\n"
               "print(json.dumps([[a['ActorClassName'], a['Address']['NodeID'], a['State']]\n"
               "                  for a in ray._private.state.actors().values()]))\n")


class Cluster:
    """Ray nodes started with `ray start --block`, each in its own process group."""

    def __init__(self, tmp: Path):
        self.home = tmp / "home"
        (self.home / ".ray").mkdir(parents=True)
        (self.home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
        self.hidden = tmp / "no_repo"  # PYTHONPATH of the node without the repository
        self.hidden.mkdir()
        (self.hidden / "sitecustomize.py").write_text(HIDE_REPO)
        self.temp_dir = tempfile.mkdtemp(prefix="dpvc", dir="/tmp")  # short: socket paths
        self.cwd = tmp  # not the repository: Ray would put the driver's cwd on workers' path
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[tuple[subprocess.Popen, Path]] = []

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_AUTH") and k not in ("RAY_ADDRESS", "PYTHONPATH")}
        return {**env, "HOME": str(self.home), "RAY_USAGE_STATS_ENABLED": "0", **extra}

    def _start(self, args: list[str], env: dict) -> subprocess.Popen:
        log = Path(self.temp_dir) / f"node{len(self.nodes)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([RAY, "start", "--block", "--node-ip-address", "127.0.0.1",
                                     "--disable-usage-stats", "--object-store-memory",
                                     str(100 * 1024 * 1024), *args],
                                    cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.nodes.append((proc, log))
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed: {log.read_text()[-1500:]}")
            time.sleep(0.5)
        return proc

    def start_head(self, cpus: int) -> subprocess.Popen:
        # RAY_AUTH_MODE unset: with a token in ~/.ray, `ray start --head` turns token auth on
        return self._start(["--head", "--port", str(self.port), "--num-cpus", str(cpus),
                            "--include-dashboard=false", "--temp-dir", self.temp_dir], self.env())

    def start_worker(self, cpus: int) -> subprocess.Popen:
        # joining by address, Ray turns token auth on only when told (README's line says so)
        return self._start(["--address", self.address, "--num-cpus", str(cpus)],
                           self.env(RAY_AUTH_MODE="token", PYTHONPATH=str(self.hidden)))

    def actors(self) -> list[tuple[str, str, str]]:
        """(class, node id, state) of every actor, from the GCS actor table."""
        res = subprocess.run([sys.executable, "-c", ACTOR_TABLE.format(address=self.address)],
                             cwd=self.cwd, env=self.env(RAY_AUTH_MODE="token"), capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        return [tuple(a) for a in json.loads(res.stdout.strip().splitlines()[-1])]

    def run(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "selfplay.run", *args, "--address", self.address],
                                cwd=self.cwd, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        for proc, _ in reversed(self.nodes):
            stop_head(proc, grace=20)
        self.nodes = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def wait_until(what: str, ok, proc, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run exited early ({proc.returncode}) waiting for {what}: {proc.stderr.read()[-2000:]}")
        got = ok()
        if got:
            return got
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def log_nodes(rd: RunDir) -> list[str]:
    """Node ids (12 hex digits) of self-play actors whose first games came in, in order."""
    text = rd.log_path.read_text() if rd.log_path.is_file() else ""
    return re.findall(r"self-play actor \d+ on node ([0-9a-f]{12}): first games in", text)


def newest(rd: RunDir):
    try:
        return rd.newest_state()
    except Exception:  # a file being replaced as we look
        return None


def newest_with_rows(rd: RunDir, cfg, ok):
    """(state, planes, values) of the newest checkpoint when ok(counters), or None: the run
    prunes old files as it saves, so the state and its buffer are read together, retried."""
    got = newest(rd)
    if not got or not ok(got[1].counters):
        return None
    try:
        return (got[1], *buffer_rows(rd, got[1], cfg))
    except CheckpointError:  # pruned between the two reads: look again
        return None


def test_actors_spread_over_two_nodes_and_a_killed_node_loses_nothing_in_the_buffer(cluster, tmp_path):
    hidden = subprocess.run([sys.executable, "-c", "import dpv"], cwd=cluster.cwd, capture_output=True,
                            env=cluster.env(PYTHONPATH=str(cluster.hidden)))
    assert hidden.returncode != 0  # the worker node's Python really has no dpv of its own
    cluster.start_head(cpus=3)  # 3: all actors still fit once the worker node is gone
    worker = cluster.start_worker(cpus=2)
    rd = RunDir(tmp_path / "run")
    proc = cluster.run([*TINY, "--run-dir", str(rd.path)])
    try:
        # both self-play actors deliver games, from two different nodes
        wait_until("games from both actors", lambda: len(set(log_nodes(rd))) >= 2, proc)
        table = cluster.actors()
        alive = {node for cls, node, state in table if cls == "SelfPlayActor" and state == "ALIVE"}
        assert len(alive) == 2 and {n[:12] for n in alive} == set(log_nodes(rd))
        # a checkpoint with games in its buffer, then the worker node dies (SIGKILL)
        cfg = load_run_config(rd.config_path)
        st1, planes1, values1 = wait_until("a checkpoint with games", lambda: newest_with_rows(
            rd, cfg, lambda c: c.games > 0), proc)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        wait_until("the lost actor replaced", lambda: "died" in rd.log_path.read_text()
                   and len(log_nodes(rd)) >= 3, proc)
        wait_until("a checkpoint after the loss", lambda: (got := newest(rd))
                   and got[1].counters.games >= st1.counters.games + 32, proc)
        survivors = {node for cls, node, state in cluster.actors()
                     if cls == "SelfPlayActor" and state == "ALIVE"}
        assert len(survivors) == 1  # both self-play actors now on the live (head) node
        assert log_nodes(rd)[-1] == next(iter(survivors))[:12]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        _, planes2, values2 = newest_with_rows(rd, cfg, lambda c: True)  # the run has stopped
        n = len(values1)  # nothing already in the buffer is lost (capacity not reached)
        np.testing.assert_array_equal(planes2[:n], planes1)
        np.testing.assert_array_equal(values2[:n], values1)
        assert len(values2) > n
        assert "token auth, 2 nodes" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_head_loss_ends_the_run_in_one_line_and_rerunning_resumes(cluster, tmp_path):
    head = cluster.start_head(cpus=3)
    rd = RunDir(tmp_path / "run")
    args = [*TINY, "--run-dir", str(rd.path)]
    proc = cluster.run(args)
    try:
        wait_until("a checkpoint with games",
                   lambda: (got := newest(rd)) and got[1].counters.games > 0, proc)
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        out, err = proc.communicate(timeout=120)  # the guard: non-zero exit within two minutes
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, err[-2000:]
    _, st = rd.newest_state()
    if proc.returncode == 2:  # the run saw the head go: it saved and said so in one line
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "lost the Ray cluster's head" in errors[0], err[-2000:]
        assert "checkpoint written" in errors[0] and "re-run" in errors[0]
        assert f"games {st.counters.games}, steps {st.counters.steps}" in errors[0]
    # else Ray's core worker ended the driver first (exit 1, when its local raylet went with
    # the head): the newest periodic checkpoint stands, as after a SIGKILL
    cluster.start_head(cpus=3)  # the cluster is back: the same command resumes
    proc = cluster.run([*args, "--max-games", str(st.counters.games + 16)])
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    assert f"resuming {rd.path}: games {st.counters.games}, steps {st.counters.steps}" in err
    assert rd.newest_state()[1].counters.sessions == 2
