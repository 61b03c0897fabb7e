"""Self-play building blocks without Ray: config, replay buffer, loss, learner, schedule, run dir."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dpv.config import GameConfig
from dpv.errors import CheckpointError, ConfigError
from dpv.games import make_game
from dpv.nets import PolicyValue
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.learner import Learner
from selfplay.losses import deep_supervision_loss, exit_weights
from selfplay.replay import SelfPlayGame, ReplayBuffer
from selfplay.rundir import RunDir, RunState
from selfplay.schedule import Counters, Limits, allowed_steps, selfplay_exit


def tiny_cfg(**sets):
    overrides = [f"{k}={v}" for k, v in sets.items()]
    return load_run_config(CONFIG_DIR / "tictactoe.yaml", overrides)


def random_game(game, rng, length=5) -> SelfPlayGame:
    c, h, w = game.observation_shape
    planes = (rng.random((length, c, h, w)) < 0.3).astype(np.uint8)
    pol = rng.random((length, game.num_actions)).astype(np.float32)
    pol /= pol.sum(1, keepdims=True)
    vals = rng.choice([-1.0, 1.0], size=length).astype(np.float32)
    return SelfPlayGame(planes, pol, vals)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("name", ["go9.yaml", "go9_paper.yaml", "go19.yaml", "tictactoe.yaml", "connect4.yaml"])
def test_every_shipped_config_loads(name):
    cfg = load_run_config(CONFIG_DIR / name)
    assert cfg.net.exits[-1] == cfg.net.blocks


def test_paper_config_has_thesis_schedule():
    cfg = load_run_config(CONFIG_DIR / "go9_paper.yaml")
    assert (cfg.train.start_games, cfg.train.steps_per_block, cfg.train.games_per_block) == (3000, 1000, 500)
    assert cfg.gating.threshold == 0.55
    assert cfg.net.exits == (6, 9, 12, 15)


def test_board_flag_and_set_override():
    cfg = load_run_config(board=7, overrides=["mcts.simulations=200", "train.variant=no_weight"])
    assert cfg.game.board_size == 7 and cfg.mcts.simulations == 200 and cfg.train.variant == "no_weight"


def test_board_flag_takes_board_dependent_values_from_the_game():
    nine = load_run_config(board=9)  # go9.yaml's own board: its values stand
    assert (nine.game.max_game_length, nine.selfplay.pass_after) == (324, 40)
    big = load_run_config(board=19)
    assert make_game(big.game).max_game_length == 4 * 361  # not go9.yaml's 324
    assert big.selfplay.pass_after == 361 // 2
    forced = load_run_config(board=19, overrides=["selfplay.pass_after=10", "game.max_game_length=500"])
    assert (forced.game.max_game_length, forced.selfplay.pass_after) == (500, 10)
    paper = load_run_config(CONFIG_DIR / "go9_paper.yaml", board=13)  # no pass-free opening there
    assert paper.selfplay.pass_after == 0


def test_go19_config_is_sized_for_its_board():
    cfg = load_run_config(CONFIG_DIR / "go19.yaml")
    assert cfg.game.board_size == 19 and cfg.selfplay.pass_after == 361 // 2
    assert make_game(cfg.game).max_game_length == cfg.game.max_game_length > 324


def test_unknown_board_size_names_the_field():
    with pytest.raises(ConfigError, match="game.board_size: 8"):
        load_run_config(board=8)


def test_board_flag_on_a_game_without_boards_is_refused():
    with pytest.raises(ConfigError, match="--board 9"):
        load_run_config(CONFIG_DIR / "tictactoe.yaml", board=9)


def test_bad_override_names_the_key():
    with pytest.raises(ConfigError, match="train.lrr"):
        tiny_cfg(**{"train.lrr": 0.1})
    with pytest.raises(ConfigError, match="train.variant"):
        tiny_cfg(**{"train.variant": "deepest"})


# ---------------------------------------------------------------- replay
def test_replay_is_a_bounded_ring_keeping_the_newest():
    game = make_game(GameConfig(name="tic_tac_toe"))
    buf = ReplayBuffer(12, game.observation_shape, game.num_actions, game, "none")
    rng = np.random.default_rng(0)
    games = [random_game(game, rng) for _ in range(5)]  # 25 positions into 12 slots
    for g in games:
        buf.add_game(g)
    assert len(buf) == 12 and buf.added == 25
    newest = np.concatenate([g.values for g in games])[-12:]
    order = (buf.next - 12 + np.arange(12)) % 12
    np.testing.assert_array_equal(buf.values[order], newest)
    assert buf.nbytes == 12 * buf.position_bytes


def test_replay_write_mode_stores_every_symmetry():
    game = make_game(GameConfig(name="tic_tac_toe"))
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game, "write")
    g = random_game(game, np.random.default_rng(1), length=3)
    buf.add_game(g)
    assert len(buf) == 3 * 8
    for s in range(8):
        np.testing.assert_array_equal(buf.planes[3 * s:3 * s + 3], game.transform_planes(g.planes, s))
        np.testing.assert_allclose(buf.policies[3 * s:3 * s + 3], game.transform_policy(g.policies, s))


def test_replay_sample_mode_rows_are_symmetric_images_of_stored_rows():
    game = make_game(GameConfig(name="tic_tac_toe"))
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game, "sample")
    g = random_game(game, np.random.default_rng(2), length=1)  # one position: every sample is it
    buf.add_game(g)
    batch = buf.sample(64, np.random.default_rng(3))
    images = {game.transform_planes(g.planes[0], s).tobytes(): s for s in range(8)}
    seen = set()
    for planes, pol in zip(batch.planes, batch.policies):
        s = images[planes.astype(np.uint8).tobytes()]
        np.testing.assert_allclose(pol, game.transform_policy(g.policies[0], s))
        seen.add(s)
    assert len(seen) > 1  # augmentation actually happens


def test_replay_save_load_round_trip_and_corrupt_file(tmp_path):
    game = make_game(GameConfig(name="tic_tac_toe"))
    buf = ReplayBuffer(7, game.observation_shape, game.num_actions, game)
    rng = np.random.default_rng(4)
    for _ in range(3):
        buf.add_game(random_game(game, rng))
    buf.save(tmp_path / "r.npz")
    other = ReplayBuffer(7, game.observation_shape, game.num_actions, game)
    other.load(tmp_path / "r.npz")
    assert other.added == buf.added and len(other) == len(buf)
    order_a = (buf.next - 7 + np.arange(7)) % 7
    order_b = (other.next - 7 + np.arange(7)) % 7
    np.testing.assert_array_equal(buf.planes[order_a], other.planes[order_b])
    (tmp_path / "bad.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        other.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------- loss
def test_exit_weights_per_variant():
    assert exit_weights("weighted", 3, 2.0) == [1.0, 1.0, 2.0]
    assert exit_weights("no_weight", 4) == [1.0] * 4
    assert exit_weights("multi_step", 2) == [1.0, 1.0]
    assert exit_weights("single_exit", 3) == [0.0, 0.0, 1.0]


def test_deep_supervision_loss_matches_formula():
    torch.manual_seed(0)
    pi = torch.softmax(torch.randn(4, 5), 1)
    z = torch.tensor([1.0, -1.0, 0.0, 1.0])
    outs = [PolicyValue(torch.randn(4, 5), torch.tanh(torch.randn(4))) for _ in range(2)]
    parts = deep_supervision_loss(outs, pi, z, [1.0, 3.0])
    expected = 0.0
    for o, w in zip(outs, [1.0, 3.0]):
        ce = -(pi * torch.log_softmax(o.policy_logits, 1)).sum(1).mean()
        expected += w * (ce + ((o.value - z) ** 2).mean())
    assert float(parts.total) == pytest.approx(float(expected), rel=1e-6)
    agree = float((outs[0].policy_logits.argmax(1) == pi.argmax(1)).float().mean())
    assert parts.agreement[0] == pytest.approx(agree)


def test_single_exit_variant_leaves_shallow_heads_untrained():
    cfg = tiny_cfg(**{"train.variant": "single_exit", "train.batch_size": 8})
    game = make_game(cfg.game)
    learner = Learner(cfg, game, "cpu")
    before = {k: v.clone() for k, v in learner.net.heads[0].state_dict().items()}
    buf = ReplayBuffer(50, game.observation_shape, game.num_actions, game)
    buf.add_game(random_game(game, np.random.default_rng(0), 20))
    learner.step(buf.sample(8, np.random.default_rng(1)))
    after = learner.net.heads[0].state_dict()
    for k, v in before.items():
        if v.dtype.is_floating_point and "running" not in k:
            torch.testing.assert_close(after[k], v)  # no gradient reached head 0's weights


def test_learner_fits_a_fixed_batch():
    """Every exit's policy and value loss falls when training on one batch repeatedly."""
    cfg = tiny_cfg(**{"train.batch_size": 32, "train.lr": 0.05})
    game = make_game(cfg.game)
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(64, game.observation_shape, game.num_actions, game, "none")
    buf.add_game(random_game(game, np.random.default_rng(5), 32))
    batch = buf.sample(32, np.random.default_rng(6))
    first = learner.step(batch)
    for _ in range(60):
        last = learner.step(batch)
    assert learner.steps == 61
    for k in range(learner.net.num_exits):
        assert last.policy[k] < first.policy[k]
        assert last.value[k] < first.value[k]


def test_learner_state_round_trip_continues_identically():
    cfg = tiny_cfg(**{"train.batch_size": 16})
    game = make_game(cfg.game)
    buf = ReplayBuffer(64, game.observation_shape, game.num_actions, game, "none")
    buf.add_game(random_game(game, np.random.default_rng(7), 30))
    batch = buf.sample(16, np.random.default_rng(8))
    a = Learner(cfg, game, "cpu")
    a.step(batch)
    b = Learner(cfg, game, "cpu")
    b.load_state_dict(a.state_dict())
    ma, mb = a.step(batch), b.step(batch)
    assert ma.loss == pytest.approx(mb.loss, rel=1e-6) and b.steps == 2


# ---------------------------------------------------------------- schedule
def test_thesis_schedule_allowance():
    s = dict(start_games=3000, steps_per_block=1000, games_per_block=500)
    assert allowed_steps(2999, **s) == 0
    assert allowed_steps(3000, **s) == 1000
    assert allowed_steps(3250, **s) == 1500
    assert allowed_steps(3500, **s) == 2000


def test_multi_step_walks_exits_through_equal_intervals():
    got = [selfplay_exit("multi_step", -1, 4, p) for p in (0.0, 0.24, 0.25, 0.6, 0.99, 1.0)]
    assert got == [0, 0, 1, 2, 3, 3]
    assert selfplay_exit("weighted", -1, 4, None) == 3
    with pytest.raises(ValueError, match="run length"):
        selfplay_exit("multi_step", -1, 4, None)


def test_limits_and_counters_round_trip():
    c = Counters(games=10, steps=5, seconds=30.0)
    assert Counters.from_dict(c.to_dict()) == c
    assert Limits(max_games=10).reached(c) and not Limits(max_steps=6).reached(c)
    assert Limits(hours=1 / 60).progress(c) == pytest.approx(0.5)


# ---------------------------------------------------------------- run dir
def test_run_dir_refuses_another_config_unless_forced(tmp_path):
    rd = RunDir(tmp_path / "run")
    cfg = tiny_cfg()
    assert rd.check_config(cfg.to_dict(), force=False) is False
    rd.write_config(cfg.to_dict())
    assert rd.check_config(cfg.to_dict(), force=False) is True
    other = tiny_cfg(**{"mcts.simulations": 7})
    with pytest.raises(ConfigError, match=r"mcts.simulations: 50 -> 7"):
        rd.check_config(other.to_dict(), force=False)
    assert rd.check_config(other.to_dict(), force=True) is True


def test_run_dir_lock_is_exclusive(tmp_path):
    a, b = RunDir(tmp_path), RunDir(tmp_path)
    a.lock()
    try:
        with pytest.raises(ConfigError, match="in use"):
            b.lock()
    finally:
        a.unlock()
    b.lock()
    b.unlock()


def test_run_dir_save_keeps_state_and_buffer_together(tmp_path):
    cfg = tiny_cfg()
    game = make_game(cfg.game)
    rd = RunDir(tmp_path)
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(40, game.observation_shape, game.num_actions, game)
    rng = np.random.default_rng(9)
    for i in range(5):
        buf.add_game(random_game(game, rng))
        state = RunState(Counters(games=i + 1), learner.state_dict(), learner.weights_cpu())
        rd.save(state, buf, learner.net, cfg.game, {})
    states = rd.states()
    assert [i for i, _ in states] == [3, 4, 5]  # older ones pruned
    assert sorted(p.name for p in rd.replay_dir.iterdir()) == [
        "replay-00000003.npz", "replay-00000004.npz", "replay-00000005.npz"]
    loaded = ReplayBuffer(40, game.observation_shape, game.num_actions, game)
    got = rd.resume(loaded.load)
    assert got.state.counters.games == 5 and got.replay_path.name == "replay-00000005.npz"
    assert len(loaded) == len(buf) and got.set_aside == []
    assert rd.best_path.is_file()


def test_run_dir_with_only_corrupt_states_is_refused_and_left_alone(tmp_path):
    rd = RunDir(tmp_path)
    rd.ckpt_dir.mkdir(parents=True)
    (rd.ckpt_dir / "state-00000001.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint.*state-00000001.pt: is corrupt"):
        rd.resume(lambda path: None)
    assert [p.name for p in rd.ckpt_dir.iterdir()] == ["state-00000001.pt"]


def test_bad_anchor_spec_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"anchors.players\[0\].*simz"):
        tiny_cfg(**{"anchors.players": '["mcts:simz=3"]'})


def test_multi_step_needs_a_run_length(tmp_path):
    from selfplay.driver import TrainingRun

    cfg = tiny_cfg(**{"train.variant": "multi_step"})
    with pytest.raises(ConfigError, match="multi_step"):
        TrainingRun(cfg, RunDir(tmp_path), Limits())
    TrainingRun(cfg, RunDir(tmp_path), Limits(max_steps=100))  # fine with a length


def test_forced_config_with_another_network_is_one_clear_error(tmp_path):
    from selfplay.driver import TrainingRun

    cfg = tiny_cfg()
    game = make_game(cfg.game)
    rd = RunDir(tmp_path)
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game)
    rd.save(RunState(Counters(), learner.state_dict(), learner.weights_cpu()), buf, learner.net,
            cfg.game, {})
    wider = tiny_cfg(**{"net.channels": 16})
    with pytest.raises(CheckpointError, match="does not fit this config's network"):
        TrainingRun(wider, rd, Limits()).restore()
