"""Playout-cap randomisation (KataGo): a share of moves searched in full and recorded as
policy targets, the rest a fast search recorded for the value only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dpv.config import GameConfig
from dpv.errors import ConfigError
from dpv.games import make_game
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.learner import Learner
from selfplay.losses import deep_supervision_loss
from selfplay.replay import Batch, ReplayBuffer, SelfPlayGame
from selfplay.worker import SelfPlayWorker


def capped_cfg(share: float = 0.25, fast: int = 4, *sets: str):
    return load_run_config(CONFIG_DIR / "tictactoe.yaml", [
        "selfplay.concurrent_games=4", "mcts.simulations=16",
        f"selfplay.full_search_share={share}", f"selfplay.fast_simulations={fast}", *sets])


@pytest.mark.parametrize("root", ["puct", "gumbel"])
def test_a_share_of_moves_is_searched_in_full_and_only_those_carry_a_policy_target(root):
    w = SelfPlayWorker(capped_cfg(0.25, 4, f"mcts.root={root}"), seed=5)
    report = w.play(moves=18)
    games = report.games
    assert len(games) >= 4
    weights = np.concatenate([g.policy_weights for g in games])
    assert set(np.unique(weights)) <= {0.0, 1.0}
    # every move searched exactly its simulation count: 16 when full, 4 when fast
    for g in games:
        full = int(g.policy_weights.sum())
        assert g.simulations == 16 * full + 4 * (len(g) - full)
    # about a quarter of all moves were full (72 draws of p = 0.25: 18 +- 11 at 3 sigma)
    assert 7 <= report.full_searches <= 29
    assert 0.05 <= weights.mean() <= 0.45


def test_without_caps_every_move_is_full():
    w = SelfPlayWorker(capped_cfg(1.0, 0), seed=5)
    games = w.play(moves=9).games
    assert games and all(np.all(g.policy_weights == 1.0) and g.simulations == 16 * len(g)
                         for g in games)


def test_fast_share_needs_a_fast_simulation_count():
    with pytest.raises(ConfigError, match="selfplay.fast_simulations: must be >= 1"):
        capped_cfg(0.5, 0)
    with pytest.raises(ConfigError, match=r"selfplay.full_search_share: must be in \(0, 1\]"):
        capped_cfg(0.0, 4)


def _game(n: int, weights) -> SelfPlayGame:
    game = make_game(GameConfig(name="tic_tac_toe"))
    planes = np.zeros((n,) + game.observation_shape, np.uint8)
    policies = np.full((n, game.num_actions), 1.0 / game.num_actions, np.float32)
    return SelfPlayGame(planes, policies, np.zeros(n, np.float32),
                        policy_weights=np.asarray(weights, np.float32))


@pytest.mark.parametrize("symmetries", ["none", "write", "sample"])
def test_policy_weights_travel_through_the_replay_and_its_file(tmp_path, symmetries):
    game = make_game(GameConfig(name="tic_tac_toe"))
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game, symmetries)
    buf.add_game(_game(4, [1, 0, 0, 1]))
    copies = 8 if symmetries == "write" else 1
    assert buf.policy_weights[:len(buf)].tolist() == [1, 0, 0, 1] * copies
    assert set(buf.sample(32, np.random.default_rng(0)).policy_weights) == {0.0, 1.0}
    buf.save(tmp_path / "r.npz")
    other = ReplayBuffer(100, game.observation_shape, game.num_actions, game, symmetries)
    other.load(tmp_path / "r.npz")
    assert other.policy_weights[:len(other)].tolist() == [1, 0, 0, 1] * copies


def test_a_replay_file_from_before_playout_caps_loads_as_full_searches(tmp_path):
    game = make_game(GameConfig(name="tic_tac_toe"))
    n = 3
    np.savez(tmp_path / "old.npz", format=1, planes=np.zeros((n,) + game.observation_shape, np.uint8),
             policies=np.zeros((n, game.num_actions), np.float32), values=np.zeros(n, np.float32),
             added=n)
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game, "none")
    buf.add_game(_game(2, [0, 0]))
    buf.load(tmp_path / "old.npz")
    assert len(buf) == 3 and buf.policy_weights[:3].tolist() == [1, 1, 1]


class _Out:
    def __init__(self, logits, value):
        self.policy_logits, self.value = logits, value


def test_rows_without_a_policy_target_add_no_policy_loss_or_gradient():
    torch.manual_seed(0)
    logits = torch.randn(3, 9, requires_grad=True)
    value = torch.zeros(3, requires_grad=True)
    pi = torch.softmax(torch.randn(3, 9), dim=1)
    z = torch.tensor([1.0, -1.0, 0.0])
    pw = torch.tensor([1.0, 0.0, 1.0])
    parts = deep_supervision_loss([_Out(logits, value)], pi, z, [1.0], pw)
    ce = -(pi * torch.log_softmax(logits, 1)).sum(1)
    assert parts.policy[0] == pytest.approx(float((ce[0] + ce[2]).detach() / 2), rel=1e-6)
    assert parts.value[0] == pytest.approx(float(((value - z) ** 2).mean().detach()), rel=1e-6)
    parts.total.backward()
    assert torch.all(logits.grad[1] == 0) and torch.any(logits.grad[0] != 0)
    assert value.grad[1] != 0  # the fast move still teaches the value


def test_learner_steps_on_a_batch_with_policy_weights():
    cfg = capped_cfg()
    game = make_game(cfg.game)
    learner = Learner(cfg, game, "cpu")
    rng = np.random.default_rng(0)
    n = 16
    planes = rng.integers(0, 2, (n,) + game.observation_shape).astype(np.float32)
    pi = np.full((n, game.num_actions), 1 / game.num_actions, np.float32)
    pw = np.array([1, 0] * (n // 2), np.float32)
    m = learner.step(Batch(planes, pi, np.zeros(n, np.float32), pw))
    assert np.isfinite(m.loss)
