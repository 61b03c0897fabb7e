"""Gating options: whom the candidate plays (gating.opponent), and gating off."""
from __future__ import annotations

import pytest
import torch

from dpv.errors import ConfigError
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.driver import MatchScore, TrainingRun
from selfplay.rundir import RunDir
from selfplay.schedule import Limits


class GateSeam:
    """The driver's actor pool at its gating seam: records the weights each candidate
    played against and answers every match 1-3 (never a promotion at 55%)."""

    def __init__(self, ray):
        self.ray = ray
        self.opponents: list[dict] = []

    def gate(self, cand_ref, against_ref, version):
        self.opponents.append(self.ray.get(against_ref))
        return [self.ray.put(MatchScore(wins=1, losses=3))]

    def ready(self, refs):
        return True

    def results(self, refs, note):
        return self.ray.get(list(refs))


class NoMonitor:
    def gating(self, *args):
        pass


def _gates(ray, tmp_path, opponent: str, rounds: int = 3):
    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml", [
        "gating.enabled=true", "gating.every_steps=1", f"gating.opponent={opponent}"])
    run = TrainingRun(cfg, RunDir(tmp_path / opponent), Limits(max_games=1), progress=False,
                      echo=lambda line: None)
    run._best_ref = ray.put(run.best_weights)
    seam, candidates = GateSeam(ray), []
    for _ in range(rounds):
        with torch.no_grad():  # a step of "training": every round's candidate is new
            for p in run.learner.net.parameters():
                p.add_(0.01)
        run.learner.steps += 1
        run.counters.steps = run.learner.steps
        candidates.append(run.learner.weights_cpu())
        run._gating(seam, NoMonitor())
    return run, seam, candidates


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_against_the_best_every_candidate_plays_the_unbeaten_first_network(ray_session, tmp_path):
    run, seam, _ = _gates(ray_session, tmp_path, "best")
    assert len(seam.opponents) == 3 and run.counters.best_version == 0
    assert all(_same(o, run.best_weights) for o in seam.opponents)


def test_against_the_previous_each_candidate_plays_the_one_before_it(ray_session, tmp_path):
    run, seam, candidates = _gates(ray_session, tmp_path, "previous")
    assert len(seam.opponents) == 3 and run.counters.best_version == 0  # none promoted
    assert _same(seam.opponents[0], run.best_weights)  # the first has no predecessor
    assert _same(seam.opponents[1], candidates[0]) and _same(seam.opponents[2], candidates[1])


def test_unknown_gating_opponent_names_the_field():
    with pytest.raises(ConfigError, match="gating.opponent: unknown opponent 'worst'"):
        load_run_config(CONFIG_DIR / "tictactoe.yaml", ["gating.opponent=worst"])


def test_a_gumbel_network_against_itself_scores_exactly_half():
    """Evaluation plays a Gumbel root without its noise: deterministic, so paired openings
    with colours swapped split every decisive pair."""
    from dpv.games import make_game
    from selfplay.gating import play_network_match, promote
    from selfplay.learner import Learner

    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml", ["mcts.root=gumbel", "mcts.simulations=16"])
    weights = Learner(cfg, make_game(cfg.game), "cpu").weights_cpu()
    result = play_network_match(cfg.game, cfg.net, cfg.mcts, weights, weights, games=8,
                                concurrent=4, seed=0)
    assert result.games == 8 and result.wins == result.losses
    assert not promote(result, 0.55)
