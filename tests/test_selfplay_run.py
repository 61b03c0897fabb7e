"""The main job end to end on a real Ray cluster: actors, the CLI, resume after SIGKILL,
Ctrl-C, TensorBoard event files, and bad input refused before anything is written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import RAY_TEST_ENV, free_port
from dpv.checkpoint import load_policy_value
from dpv.games import make_game
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.replay import ReplayBuffer
from selfplay.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent

# A tic-tac-toe run small enough to checkpoint, train and gate within seconds.
TINY = ["--config", str(CONFIG_DIR / "tictactoe.yaml"),
        "--set", "selfplay.concurrent_games=8", "--set", "selfplay.moves_per_call=3",
        "--set", "mcts.simulations=16", "--set", "train.start_games=16",
        "--set", "train.steps_per_block=20", "--set", "train.games_per_block=16",
        "--set", "train.batch_size=32", "--set", "train.checkpoint_seconds=2",
        "--set", "gating.enabled=true", "--set", "gating.every_steps=10", "--set", "gating.games=4",
        "--set", "gating.threshold=0.0",  # any candidate with a point is promoted: tests the path
        "--set", "anchors.every_steps=0", "--no-progress"]


def cli(args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "selfplay.run", *args], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, env={**os.environ, **RAY_TEST_ENV}, **kw)


def start(args):
    return subprocess.Popen([sys.executable, "-m", "selfplay.run", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **RAY_TEST_ENV})


def wait_for_state(rd: RunDir, proc, ok, timeout=180):
    """Poll the run dir until its newest checkpoint satisfies `ok(counters)`; returns
    (path, RunState)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            got = rd.newest_state()
        except Exception:  # a file being replaced as we look: look again
            got = None
        if got is not None and ok(got[1].counters):
            return got
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the run never reached the expected checkpoint")


def buffer_rows(rd: RunDir, state, cfg):
    game = make_game(cfg.game)
    buf = ReplayBuffer(cfg.replay.capacity, game.observation_shape, game.num_actions, game)
    buf.load(rd.replay_dir / state.replay_file)
    order = (buf.next - buf.size + np.arange(buf.size)) % buf.capacity
    return buf.planes[order], buf.values[order]


# ------------------------------------------------------------------ actors
def test_selfplay_actor_plays_through_ray(ray_session):
    from selfplay.actors import SelfPlayActor

    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml",
                          ["selfplay.concurrent_games=3", "mcts.simulations=8"])
    actor = SelfPlayActor.options(num_cpus=1, max_pending_calls=2).remote(cfg.to_dict(), 0, 1)
    report = ray_session.get(actor.play.remote(None, 0, -1, 9), timeout=120)
    assert len(report.games) >= 3 and report.moves == 27
    ray_session.kill(actor)


def test_a_dead_selfplay_actor_is_replaced_and_play_goes_on(ray_session):
    from selfplay.driver import _ActorPool

    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml",
                          ["selfplay.actors=1", "selfplay.concurrent_games=2", "mcts.simulations=8",
                           "selfplay.moves_per_call=1"])
    pool = _ActorPool(cfg, session=1)
    pool.start()
    notes = []
    try:
        # version -1 is what a new actor "has": no weights are sent, it keeps its own
        pool.fill(None, -1, -1)
        assert pool.pending == [2]  # bounded: max_pending_calls
        first = pool.selfplay[0]
        ray_session.kill(first)
        got = []
        deadline = time.monotonic() + 120
        while not got and time.monotonic() < deadline:
            got = pool.collect(1.0, notes.append)
            pool.fill(None, -1, -1)
        assert got and got[0].moves == 2
        assert pool.selfplay[0] is not first
        assert any("died" in n for n in notes)
    finally:
        pool.stop()


# ------------------------------------------------------------------ resume after SIGKILL
def test_sigkilled_run_resumes_with_its_counters_buffer_and_best_network(ray_cluster, tmp_path):
    rd = RunDir(tmp_path / "run")
    args = [*TINY, "--run-dir", str(rd.path), "--address", ray_cluster]
    proc = start(args)
    wait_for_state(rd, proc, lambda c: c.best_version >= 1 and c.steps > 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # what survived: the newest checkpoint on disk (read again: one more may have landed)
    _, st1 = rd.newest_state()
    c1 = st1.counters
    cfg = load_run_config(rd.config_path)
    planes1, values1 = buffer_rows(rd, st1, cfg)

    res = cli([*args, "--max-games", str(c1.games + 24)], timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (f"resuming {rd.path}: games {c1.games}, steps {c1.steps}, buffer {len(values1)}, "
            f"best network v{c1.best_version}") in res.stderr
    _, st2 = rd.newest_state()
    c2 = st2.counters
    assert c2.sessions == 2
    assert c2.games >= c1.games + 24 and c2.steps >= c1.steps
    assert c2.positions > c1.positions and c2.model_version >= c1.model_version
    assert c2.best_version >= c1.best_version
    planes2, values2 = buffer_rows(rd, st2, cfg)
    n = len(values1)  # capacity is not reached: the old rows lead, the new ones follow
    assert len(values2) > n
    np.testing.assert_array_equal(planes2[:n], planes1)
    np.testing.assert_array_equal(values2[:n], values1)
    if c2.best_version == c1.best_version:
        for k, v in st1.best_model.items():
            torch.testing.assert_close(st2.best_model[k], v)
    # best.pt is a dpv checkpoint the arena and GTP engine load
    net, game_cfg = load_policy_value(rd.best_path, expect_game=cfg.game)
    assert game_cfg.name == "tic_tac_toe"
    assert "session 2 starts" in rd.log_path.read_text()


# ------------------------------------------------------------------ Ctrl-C, TensorBoard
def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly_embedded_ray(tmp_path):
    """Also the embedded path: no --address, the run starts (and stops) its own Ray."""
    rd = RunDir(tmp_path / "run")
    proc = start([*TINY, "--run-dir", str(rd.path)])
    # wait for a finished gating match too, so its scalars must be in the event files
    before = wait_for_state(rd, proc, lambda c: c.steps >= 10 and c.gating_matches >= 1)[0].name
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted (Ctrl-C): checkpoint written" in err
    after = rd.newest_state()[0]
    assert after.name > before  # a checkpoint written on the way out
    assert "interrupted" in rd.log_path.read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(rd.tb_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for k in range(2):
        assert {f"loss_policy/exit{k}", f"loss_value/exit{k}", f"agreement/exit{k}",
                f"exits_used/exit{k}"} <= tags
    assert {"selfplay/buffer_size", "selfplay/evaluator_positions_per_s", "loss/total"} <= tags
    assert {"memory/actor_rss_mb", "memory/actor_anon_mb", "memory/driver_anon_mb"} <= tags
    assert "gating/candidate_score" in tags

    from selfplay.plot import main as plot_main

    assert plot_main([str(rd.path), "--out", str(tmp_path / "losses.png")]) == 0
    assert (tmp_path / "losses.png").stat().st_size > 10_000


# ------------------------------------------------------------------ bad input
def assert_one_line_error(res, *fragments):
    """Refused: exit 2 and one line saying why (beside, at most, the run's first line that
    says what it was about to do)."""
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith("self-play ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_unknown_board_size_is_refused_before_anything_is_written(tmp_path):
    res = cli(["--board", "8", "--run-dir", str(tmp_path / "r")])
    assert_one_line_error(res, "game.board_size", "8")
    assert not (tmp_path / "r").exists()


def test_auth_mode_of_a_cluster_is_read_from_its_gcs(ray_cluster):
    from selfplay.cluster import cluster_auth_mode

    assert cluster_auth_mode(ray_cluster) == "disabled"  # the session's head runs without tokens


def test_auth_mode_set_against_the_cluster_is_a_one_line_error(ray_cluster, tmp_path):
    # the timeout only catches a hang (a mismatch used to cost 20 s of GCS warnings, then fail)
    res = subprocess.run([sys.executable, "-m", "selfplay.run", *TINY, "--run-dir", str(tmp_path / "r"),
                          "--address", ray_cluster], cwd=ROOT, timeout=120, capture_output=True,
                         text=True, env={**os.environ, **RAY_TEST_ENV, "RAY_AUTH_MODE": "token"})
    assert_one_line_error(res, "token authentication is disabled, but RAY_AUTH_MODE=token")
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_address_of_something_that_is_not_ray_is_refused(tmp_path):
    import socket
    import threading

    with socket.socket() as server:  # a TCP server that is no gRPC server
        server.bind(("127.0.0.1", 0))
        server.listen()
        threading.Thread(target=lambda: [server.accept()[0].close() for _ in range(8)],
                         daemon=True).start()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        res = cli([*TINY, "--run-dir", str(tmp_path / "r"), "--address", address], timeout=120)
    assert_one_line_error(res, "not a Ray cluster's GCS")


def test_address_with_no_cluster_is_a_one_line_error(tmp_path):
    port = free_port()  # nothing listens here
    # the timeout only catches a hang (an address with no cluster once took minutes to fail)
    res = cli([*TINY, "--run-dir", str(tmp_path / "r"), "--address", f"127.0.0.1:{port}"], timeout=120)
    assert_one_line_error(res, f"127.0.0.1:{port}", "no Ray cluster")
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_run_dir_with_another_config_is_refused_unless_forced(tmp_path):
    rd = RunDir(tmp_path / "r")
    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml")
    rd.write_config(cfg.to_dict())
    before = rd.config_path.read_bytes()
    res = cli(["--config", str(CONFIG_DIR / "tictactoe.yaml"), "--run-dir", str(rd.path),
               "--set", "mcts.simulations=7", "--address", "127.0.0.1:1"])
    assert_one_line_error(res, "different config", "mcts.simulations: 50 -> 7", "--force-config")
    assert rd.config_path.read_bytes() == before
    # forced: the config check passes (the run then fails on the dead address, writing nothing)
    res = cli(["--config", str(CONFIG_DIR / "tictactoe.yaml"), "--run-dir", str(rd.path),
               "--set", "mcts.simulations=7", "--address", "127.0.0.1:1", "--force-config"])
    assert_one_line_error(res, "no Ray cluster")
    assert rd.config_path.read_bytes() == before


def test_corrupt_checkpoint_is_one_line_and_left_alone(tmp_path):
    rd = RunDir(tmp_path / "r")
    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml")
    rd.write_config(cfg.to_dict())
    rd.ckpt_dir.mkdir(parents=True)
    bad = rd.ckpt_dir / "state-00000003.pt"
    bad.write_bytes(b"PK\x03\x04 torn write")
    res = cli(["--config", str(CONFIG_DIR / "tictactoe.yaml"), "--run-dir", str(rd.path)])
    assert_one_line_error(res, "state-00000003.pt", "corrupt")
    assert bad.read_bytes() == b"PK\x03\x04 torn write"
    assert sorted(p.name for p in rd.path.iterdir()) == [".lock", "checkpoints", "config.yaml"]
