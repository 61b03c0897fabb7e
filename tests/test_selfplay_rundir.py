"""The run directory heals loudly: damaged newest checkpoints or buffers are moved aside and
the run resumes from the newest intact pair; a failed write leaves the previous one intact;
a state written before RunState (format 1) still resumes. No Ray: plain files on disk."""
from __future__ import annotations

import errno

import numpy as np
import pytest
import torch

import dpv.checkpoint
import selfplay.replay
import selfplay.rundir
from dpv.checkpoint import save_checkpoint
from dpv.errors import CheckpointError
from dpv.games import make_game
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.driver import TrainingRun
from selfplay.learner import Learner
from selfplay.replay import ReplayBuffer, SelfPlayGame
from selfplay.rundir import RUN_STATE_FORMAT, RunDir, RunState
from selfplay.schedule import Counters, Limits


@pytest.fixture(scope="module")
def cfg():
    return load_run_config(CONFIG_DIR / "tictactoe.yaml", ["train.batch_size=8"])


def game_of(game, seed: int, length: int = 5) -> SelfPlayGame:
    rng = np.random.default_rng(seed)
    c, h, w = game.observation_shape
    pol = rng.random((length, game.num_actions)).astype(np.float32)
    return SelfPlayGame((rng.random((length, c, h, w)) < 0.3).astype(np.uint8),
                        pol / pol.sum(1, keepdims=True), rng.choice([-1.0, 1.0], length).astype(np.float32))


def run_with_saves(cfg, path, n: int) -> RunDir:
    """A run dir with states 1..n; state i holds i games and 10*i steps."""
    game = make_game(cfg.game)
    rd = RunDir(path)
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game)
    for i in range(1, n + 1):
        buf.add_game(game_of(game, i))
        c = Counters(games=i, steps=10 * i, best_version=i)
        rd.save(RunState(c, learner.state_dict(), learner.weights_cpu(), config=cfg.to_dict()),
                buf, learner.net, cfg.game, {"version": i, "step": 10 * i, "games": i})
    return rd


def empty_buffer(cfg):
    game = make_game(cfg.game)
    return ReplayBuffer(100, game.observation_shape, game.num_actions, game)


def listing(rd: RunDir) -> dict[str, bytes]:
    return {str(p.relative_to(rd.path)): p.read_bytes() for p in sorted(rd.path.rglob("*")) if p.is_file()}


def test_truncated_newest_state_is_moved_aside_and_the_one_before_resumes(cfg, tmp_path):
    rd = run_with_saves(cfg, tmp_path, 3)
    newest = rd.ckpt_dir / "state-00000003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn write
    buf = empty_buffer(cfg)
    got = rd.resume(buf.load)
    assert got.path.name == "state-00000002.pt" and got.state.counters.games == 2
    assert len(buf) == 10  # the buffer saved with state 2: two games of five positions
    assert (rd.ckpt_dir / "state-00000003.pt.corrupt").is_file() and not newest.exists()
    [line] = got.set_aside
    assert "state-00000003.pt is corrupt" in line and "state-00000003.pt.corrupt" in line
    assert "loses 1 games and 10 learner steps" in line  # from the save's log line
    assert line in rd.log_path.read_text()


def test_corrupt_newest_replay_sets_aside_its_state_too(cfg, tmp_path):
    rd = run_with_saves(cfg, tmp_path, 3)
    (rd.replay_dir / "replay-00000003.npz").write_bytes(b"PK\x03\x04 torn")
    got = rd.resume(empty_buffer(cfg).load)
    assert got.path.name == "state-00000002.pt"
    assert sorted(p.name for p in rd.replay_dir.iterdir()) == [
        "replay-00000001.npz", "replay-00000002.npz", "replay-00000003.npz.corrupt"]
    [line] = got.set_aside
    assert "corrupt replay buffer replay-00000003.npz" in line
    assert "loses 1 games and 10 learner steps" in line


def test_all_states_corrupt_is_refused_with_nothing_changed(cfg, tmp_path):
    rd = run_with_saves(cfg, tmp_path, 2)
    for _, p in rd.states():
        p.write_bytes(p.read_bytes()[:500])
    before = listing(rd)
    with pytest.raises(CheckpointError, match="no intact checkpoint") as e:
        rd.resume(empty_buffer(cfg).load)
    assert "state-00000002.pt: is corrupt" in str(e.value) and "state-00000001.pt" in str(e.value)
    assert "\n" not in str(e.value)
    assert listing(rd) == before


def test_names_of_set_aside_states_are_never_reused(cfg, tmp_path):
    rd = run_with_saves(cfg, tmp_path, 2)
    (rd.ckpt_dir / "state-00000002.pt").write_bytes(b"garbage")
    rd.resume(empty_buffer(cfg).load)
    game = make_game(cfg.game)
    learner = Learner(cfg, game, "cpu")
    path = rd.save(RunState(Counters(games=9), learner.state_dict(), learner.weights_cpu()),
                   empty_buffer(cfg), learner.net, cfg.game, {})
    assert path.name == "state-00000003.pt"
    assert (rd.ckpt_dir / "state-00000002.pt.corrupt").is_file()


def test_failed_write_leaves_the_previous_state_intact_and_is_one_line(cfg, tmp_path, monkeypatch):
    rd = run_with_saves(cfg, tmp_path, 2)
    real = dpv.checkpoint.atomic_write_bytes

    def disk_full(path, data):  # the state file is the last of a save: all else landed
        if path.name.startswith("state-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(dpv.checkpoint, "atomic_write_bytes", disk_full)
    monkeypatch.setattr(selfplay.replay, "atomic_write_bytes", disk_full)
    game = make_game(cfg.game)
    learner = Learner(cfg, game, "cpu")
    with pytest.raises(CheckpointError) as e:
        rd.save(RunState(Counters(games=3), learner.state_dict(), learner.weights_cpu()),
                empty_buffer(cfg), learner.net, cfg.game, {"games": 3})
    msg = str(e.value)
    assert "No space left on device" in msg and "state-00000002.pt is intact" in msg and "\n" not in msg
    monkeypatch.undo()
    assert [i for i, _ in rd.states()] == [1, 2]
    got = rd.resume(empty_buffer(cfg).load)
    assert got.path.name == "state-00000002.pt" and got.set_aside == []


def test_resume_after_a_failed_write_puts_back_the_matching_best_network(cfg, tmp_path, monkeypatch):
    """best.pt is written before the state: a save that fails in between leaves a newer
    best.pt than the state; the resume writes the one that goes with the state."""
    rd = run_with_saves(cfg, tmp_path, 2)
    run = TrainingRun(cfg, rd, Limits())
    assert run.restore().state.counters.games == 2

    def disk_full(path, payload):  # the state write fails; best.pt (written before) landed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(selfplay.rundir, "save_checkpoint", disk_full)
    run.counters.games, run.counters.best_version = 7, 5
    with pytest.raises(CheckpointError, match="state-00000002.pt is intact"):
        run.save()
    assert torch.load(rd.best_path, weights_only=True)["games"] == 7  # the newer best.pt landed
    monkeypatch.undo()
    again = TrainingRun(cfg, rd, Limits())
    assert again.restore().path.name == "state-00000002.pt"
    best = torch.load(rd.best_path, weights_only=True)
    assert (best["games"], best["version"]) == (2, 2)


def test_state_written_before_run_state_resumes(cfg, tmp_path):
    """Format 1: the dict the driver wrote before RunState (keys exactly as it wrote them)."""
    game = make_game(cfg.game)
    rd = RunDir(tmp_path)
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(cfg.replay.capacity, game.observation_shape, game.num_actions, game)
    buf.add_game(game_of(game, 1))
    buf.save(rd.replay_dir / "replay-00000001.npz")
    rng = np.random.default_rng(5)
    old_counters = {"games": 338, "positions": 2414, "steps": 238, "model_version": 2,
                    "best_version": 2, "best_step": 200, "gating_matches": 0, "gating_promotions": 0,
                    "last_gate_step": 200, "last_anchor_step": 0, "seconds": 29.5, "sessions": 1}
    save_checkpoint(rd.ckpt_dir / "state-00000001.pt", {
        "counters": old_counters, "learner": learner.state_dict(), "best_model": learner.weights_cpu(),
        "rng": rng.bit_generator.state, "config": cfg.to_dict(),
        "replay_file": "replay-00000001.npz", "saved_at": 1.0})
    run = TrainingRun(cfg, rd, Limits())
    got = run.restore()
    assert got.state.counters == Counters(**old_counters)
    assert run.counters.steps == 238 and len(run.buffer) == 5
    assert run.rng.bit_generator.state == rng.bit_generator.state
    run.save()  # nothing new since the state it resumed: no second, equal checkpoint
    assert [i for i, _ in rd.states()] == [1]
    run.counters.games += 1
    run.save()  # the next save is the new format
    path, state = rd.newest_state()
    assert path.name == "state-00000002.pt" and state.counters.games == 339
    assert torch.load(path, weights_only=True)["run_state_format"] == RUN_STATE_FORMAT


def test_state_of_a_newer_format_is_refused(cfg, tmp_path):
    rd = run_with_saves(cfg, tmp_path, 1)
    path = rd.states()[-1][1]
    payload = torch.load(path, weights_only=True)
    save_checkpoint(path, {**payload, "run_state_format": RUN_STATE_FORMAT + 1})
    with pytest.raises(CheckpointError, match="newer than this package reads"):
        rd.resume(empty_buffer(cfg).load)
