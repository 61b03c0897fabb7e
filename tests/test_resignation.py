"""Resignation in self-play with its false-positive check (AlphaGo Zero): a player whose
root value stays low resigns; a share of games is played out to measure how often that
would have been wrong, and the threshold adapts to keep it under the target."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dpv.errors import ConfigError
from dpv.evaluator import Evaluation, Evaluator, TimedEvaluator
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.resign import (PlayedOut, ResignConfig, ResignTracker, false_positive_rates, resigners,
                             trigger_levels)
from selfplay.worker import SelfPlayWorker


class LostForBlack(Evaluator):
    """Uniform policy; every position is lost for Black and won for White (each from the
    mover's view), so Black's root value stays near -0.99 and White's near +0.99."""

    num_exits = 1

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        n = len(legal_mask)
        black_to_move = planes[:, -1, 0, 0] == 1  # the colour plane
        return Evaluation((legal_mask / legal_mask.sum(1, keepdims=True)).astype(np.float32),
                          np.where(black_to_move, -0.99, 0.99).astype(np.float32),
                          np.zeros(n, np.int64), np.zeros(n))


class FakeEvaluatorWorker(SelfPlayWorker):
    def _build_evaluator(self):
        return TimedEvaluator(LostForBlack()), replace(self.cfg.mcts, exit_mode="fixed", exit=0)


def resign_cfg(*sets: str):
    return load_run_config(CONFIG_DIR / "tictactoe.yaml", [
        "selfplay.concurrent_games=4", "mcts.simulations=8", "selfplay.resign.enabled=true",
        "selfplay.resign.threshold=-0.5", "selfplay.resign.consecutive=2", *sets])


def test_games_end_by_resignation_after_the_configured_number_of_low_moves():
    w = FakeEvaluatorWorker(resign_cfg("selfplay.resign.playout_share=0.0"), seed=0)
    report = w.play(moves=6)
    assert report.resigned == len(report.games) == 8  # each slot: two games of 3 positions
    for g in report.games:
        # Black's value is low at plies 0 and 2: it resigns at its second move, before playing it
        assert len(g) == 3 and g.values.tolist() == [-1.0, 1.0, -1.0]
        assert g.ownership is None and g.score is None  # no final position: no aux targets
    assert report.played_out == 0 and report.resign_threshold == -0.5


def test_played_out_games_count_a_false_positive_when_the_would_be_resigner_does_not_lose():
    cfg = resign_cfg("selfplay.resign.playout_share=1.0", "selfplay.resign.adapt=false")
    w = FakeEvaluatorWorker(cfg, seed=1)
    report = w.play(moves=9)  # tic-tac-toe ends within 9 moves
    games = report.games
    assert len(games) >= 4 and report.resigned == 0 and report.played_out == len(games)
    assert all(len(g) >= 5 for g in games)  # played out, not resigned at ply 2
    # Black is the would-be resigner of every game; wrong wherever it won or drew
    black_did_not_lose = sum(1 for g in games if g.values[0] >= 0)
    assert report.would_resign == len(games)
    assert report.false_positives == black_did_not_lose
    assert 0 < black_did_not_lose < len(games)  # both kinds occur, so the count is a real check


def test_without_resignation_nothing_resigns():
    w = FakeEvaluatorWorker(resign_cfg("selfplay.resign.enabled=false"), seed=0)
    report = w.play(moves=9)
    assert report.resigned == 0 and all(len(g) >= 5 for g in report.games)
    assert report.resign_threshold is None


def played(values, winner):
    values = np.asarray(values, dtype=np.float64)
    return PlayedOut(values, np.arange(len(values)) % 2, winner)


def test_trigger_levels_and_first_resigner():
    # Black's values -0.2, -0.8, -0.7, -0.95; White's all high
    g = played([-0.2, 0.9, -0.8, 0.9, -0.7, 0.9, -0.95, 0.9], winner=1)
    np.testing.assert_allclose(trigger_levels(np.array([-0.2, -0.8, -0.7, -0.95]), 2), [-0.2, -0.7, -0.7])
    # below -0.7 for two moves in a row only from Black's third window on: t must pass -0.7
    np.testing.assert_array_equal(resigners(g, np.array([-0.7, -0.69, -0.1, -0.9]), 2), [-1, 0, 0, -1])
    rate, would = false_positive_rates([g], np.array([-0.69]), 2)
    assert would[0] == 1 and rate[0] == 0.0  # Black would resign and did lose: right


def test_the_earlier_resignation_decides_who_would_have_resigned():
    # White's values drop first (plies 1, 3), Black's later (plies 4, 6): White resigns first
    g = played([0.0, -0.9, 0.0, -0.9, -0.9, 0.5, -0.9, 0.5], winner=1)
    np.testing.assert_array_equal(resigners(g, np.array([-0.5, -0.95]), 2), [1, -1])
    rate, _ = false_positive_rates([g], np.array([-0.5]), 2)
    assert rate[0] == 1.0  # White would have resigned a game it won


def test_threshold_moves_down_when_resignations_would_often_be_wrong():
    cfg = ResignConfig(enabled=True, threshold=-0.6, consecutive=1, target_false_positives=0.25,
                       min_games=4, max_threshold=-0.5)
    tracker = ResignTracker(cfg)
    # Black's lowest value per game: -0.9 (lost), -0.8 (won), -0.7 (won), -0.65 (lost): at -0.6
    # all four would resign, two wrongly (50%); at -0.8 only the -0.9 game (0%)
    for low, winner in ((-0.9, 1), (-0.8, 0), (-0.7, 0), (-0.65, 1)):
        tracker.record(played([low, 0.9, 0.0, 0.9], winner))
    assert tracker.threshold == pytest.approx(-0.8)
    rate, would = false_positive_rates(tracker.recent, np.array([tracker.threshold]), 1)
    assert rate[0] <= 0.25 and would[0] == 1


def test_threshold_rises_to_its_cap_when_resignations_are_always_right():
    cfg = ResignConfig(enabled=True, threshold=-0.95, consecutive=1, min_games=3, max_threshold=-0.5,
                       min_support=3)
    tracker = ResignTracker(cfg)
    for low in (-0.9, -0.7, -0.6):
        would, wrong = tracker.record(played([low, 0.9], winner=1))
        assert not wrong
    assert tracker.threshold == -0.5


def test_threshold_does_not_rise_on_too_few_would_be_resignations():
    # as in the first 1-hour 9x9 run: 10 played-out games, every would-be resignation right,
    # but 10 < min_support (20), so none of them is evidence that a higher threshold keeps
    # the rate under 5%: the threshold stays; at 20 games it rises
    cfg = ResignConfig(enabled=True, threshold=-0.9, consecutive=1, min_games=10, max_threshold=-0.5)
    tracker = ResignTracker(cfg)
    for i in range(19):
        tracker.record(played([-0.95 + 0.02 * (i % 10), 0.9], winner=1))
        if i >= 9:
            assert tracker.threshold == -0.9
    tracker.record(played([-0.6, 0.9], winner=1))
    assert tracker.threshold == -0.5
    # and it still moves down at once when resignations at it would be wrong
    for _ in range(3):
        tracker.record(played([-0.6, 0.9], winner=0))
    assert tracker.threshold == pytest.approx(-0.6)  # the wrong ones (level -0.6) no longer resign
    rate, _ = false_positive_rates(tracker.recent, np.array([tracker.threshold]), 1)
    assert rate[0] <= cfg.target_false_positives


def test_record_reports_the_check_at_the_threshold_in_force():
    tracker = ResignTracker(ResignConfig(enabled=True, threshold=-0.5, consecutive=1, adapt=False))
    assert tracker.record(played([-0.9, 0.9], winner=0)) == (True, True)  # Black would resign, won
    assert tracker.record(played([-0.9, 0.9], winner=1)) == (True, False)
    assert tracker.record(played([-0.1, 0.9], winner=0)) == (False, False)
    assert tracker.threshold == -0.5


def test_bad_resign_settings_name_the_field():
    with pytest.raises(ConfigError, match="selfplay.resign.playout_share: must be in"):
        resign_cfg("selfplay.resign.playout_share=1.5")
    with pytest.raises(ConfigError, match="unknown config key 'selfplay.resign.treshold'"):
        resign_cfg("selfplay.resign.treshold=-0.8")


def test_tensorboard_gets_resignation_and_aux_head_curves(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from selfplay.learner import StepMetrics
    from selfplay.monitor import Monitor
    from selfplay.worker import SelfPlayReport

    mon = Monitor(tmp_path, 0, 3, progress=False)
    mon.train(20, StepMetrics(1.0, [1.0] * 3, [0.5] * 3, [0.1] * 3, [None, None, 0.4],
                              [None, None, 0.02], [None, None, 0.7]))
    games = [object()] * 4
    mon.selfplay(20, 4, SelfPlayReport(games=games, exit_histogram=[0, 0, 1], resigned=2, played_out=2,
                                       would_resign=2, false_positives=1, resign_threshold=-0.8), 10)
    mon.selfplay(40, 8, SelfPlayReport(games=games, exit_histogram=[0, 0, 1], resigned=1, played_out=1,
                                       would_resign=2, false_positives=0, resign_threshold=-0.75), 10)
    mon.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss_ownership/exit2", "loss_score/exit2", "ownership_accuracy/exit2"} <= tags
    assert "loss_ownership/exit0" not in tags  # no aux head there
    last = {t: acc.Scalars(t)[-1].value for t in tags if t.startswith("resign/")}
    assert last == pytest.approx({"resign/threshold": -0.75, "resign/resigned_share": 3 / 8,
                                  "resign/played_out_games": 3, "resign/false_positive_rate": 1 / 4})
