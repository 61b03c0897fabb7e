"""The self-play loop and the evaluation match, in-process (no Ray)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dpv.games import make_game
from dpv.play.records import BLACK, WHITE, GameRecord, MatchResult
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.gating import play_network_match, promote
from selfplay.learner import Learner
from selfplay.worker import SelfPlayWorker


def ttt_cfg(*sets):
    return load_run_config(CONFIG_DIR / "tictactoe.yaml",
                           ["selfplay.concurrent_games=4", "mcts.simulations=16", *sets])


def test_worker_plays_complete_games_with_consistent_targets():
    cfg = ttt_cfg()
    w = SelfPlayWorker(cfg, seed=1)
    report = w.play(moves=9)  # tic-tac-toe ends within 9 moves: every slot finishes a game
    assert len(report.games) >= 4
    assert report.moves == 4 * 9 and report.evaluations > 0 and report.network_seconds > 0
    assert report.exit_histogram[-1] == report.evaluations  # deepest exit only, by default
    assert 0 < report.anon_mb <= report.rss_mb  # private memory is part of the resident set
    game = make_game(cfg.game)
    for g in report.games:
        assert g.planes.dtype == np.uint8 and g.planes.shape[1:] == game.observation_shape
        np.testing.assert_allclose(g.policies.sum(1), 1.0, rtol=1e-5)
        # one outcome seen from alternating movers: targets alternate sign (or all 0 in a draw)
        if g.values[0] != 0:
            assert np.all(g.values[::2] == g.values[0]) and np.all(g.values[1::2] == -g.values[0])
        else:
            assert np.all(g.values == 0)


def test_worker_value_targets_match_the_winner():
    cfg = ttt_cfg()
    w = SelfPlayWorker(cfg, seed=2)
    games = w.play(moves=9).games
    for g in games:
        # the last position's mover either won with the last move (+1) or drew (0)
        assert g.values[-1] in (0.0, 1.0)


def test_worker_exit_and_weights_switch():
    cfg = ttt_cfg()
    w = SelfPlayWorker(cfg, seed=3)
    w.set_exit(0)
    report = w.play(moves=2)
    assert report.exit == 0 and report.exit_histogram[0] == report.evaluations
    learner = Learner(cfg, make_game(cfg.game), "cpu")
    with torch.no_grad():
        for p in learner.net.parameters():
            p.add_(0.1)
    w.set_weights(learner.weights_cpu(), version=5)
    assert w.version == 5
    for a, b in zip(w.net.state_dict().values(), learner.net.state_dict().values()):
        torch.testing.assert_close(a, b.cpu())


def test_identical_networks_score_exactly_half():
    """Pairs share an opening with colours swapped and search is deterministic without noise,
    so a network against itself wins exactly one game of each decisive pair."""
    cfg = ttt_cfg()
    weights = Learner(cfg, make_game(cfg.game), "cpu").weights_cpu()
    result = play_network_match(cfg.game, cfg.net, cfg.mcts, weights, weights, games=8,
                                concurrent=3, seed=0)
    assert result.games == 8 and result.wins == result.losses
    assert result.score == pytest.approx(0.5)
    assert not promote(result, 0.55)


def _result(wins: int, losses: int) -> MatchResult:
    """A's wins and losses as game records (A plays Black)."""
    records = [GameRecord("a", "b", "tic_tac_toe", 3, 0.0, winner=w, a_colour=BLACK)
               for w in [BLACK] * wins + [WHITE] * losses]
    return MatchResult("a", "b", records)


def test_promotion_needs_more_than_the_threshold():
    assert promote(_result(12, 8), 0.55)  # 60%
    assert not promote(_result(11, 9), 0.55)  # 55% is not more than 55%
    assert not promote(_result(0, 0), 0.0)


def test_no_pass_in_self_play_before_pass_after():
    cfg = load_run_config(CONFIG_DIR / "go9.yaml",
                          ["game.board_size=5", "selfplay.concurrent_games=2", "mcts.simulations=8",
                           "selfplay.pass_after=6", "net.blocks=1", "net.exits=[1]", "net.channels=8"])
    w = SelfPlayWorker(cfg, seed=4)
    pass_action = w.game.pass_action
    report = w.play(moves=8)
    for slot in w.slots:  # games still running: their first 6 moves hold no pass
        assert pass_action not in slot.state.history()[:6]
        assert np.all(np.stack(slot.policies)[:6, pass_action] == 0)
    assert report.moves == 16
    state = w.slots[0].state
    assert state.clone().legal_mask().sum() == len(state.clone().legal_actions())


def test_value_targets_come_from_the_game_result_also_behind_the_pass_filter():
    cfg = load_run_config(CONFIG_DIR / "go9.yaml",
                          ["game.board_size=5", "selfplay.concurrent_games=1", "mcts.simulations=2",
                           "selfplay.pass_after=2", "net.blocks=1", "net.exits=[1]", "net.channels=8",
                           "game.max_game_length=6"])
    w = SelfPlayWorker(cfg, seed=0)
    report = w.play(moves=6)  # the 6-move limit ends the one game
    (g,) = report.games
    players = [0, 1, 0, 1, 0, 1]
    assert g.values.tolist() != [0.0] * 6  # 6 stones on 25 points: komi 7.5 decides, no draw
    winner = 0 if g.values[0] > 0 else 1
    assert g.values.tolist() == [1.0 if p == winner else -1.0 for p in players]
