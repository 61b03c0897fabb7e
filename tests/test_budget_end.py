"""The end of a dynamic search's budget (MCTSConfig.budget_end), on an evaluator whose exit
choice is fixed by the test: costs 1, 2, 4 FLOPs at exits 0, 1, 2 (B = n_ref x 4)."""
import numpy as np
import pytest

from dpv.config import GameConfig, MCTSConfig
from dpv.errors import ConfigError, DPVError
from dpv.evaluator import Evaluation, Evaluator
from dpv.games import make_game
from dpv.mcts import MCTS, SearchLimit, run_searches
from dpv.players.spec import parse_spec

COSTS = np.array([1.0, 2.0, 4.0])


class ExitAsToldEvaluator(Evaluator):
    """Uniform policy, value 0; each row stops at `exit` (None: as deep as max_exit allows)."""

    num_exits = 3
    wants_planes = False
    wants_legal = False

    def __init__(self, exit=None):
        self.exit = exit

    def exit_cost(self, k):
        return float(COSTS[k])

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        n, a = legal_mask.shape
        cap = np.asarray(max_exit, dtype=np.int64)
        k = cap if self.exit is None else np.minimum(cap, self.exit)
        return Evaluation(np.full((n, a), 1.0 / a), np.zeros(n), k, COSTS[k])


def _search(budget_end, ev, budget=None, n_ref=2):
    game = make_game(GameConfig(name="connect_four"))
    cfg = MCTSConfig(exit_mode="dynamic", n_ref=n_ref, leaves_per_call=1, budget_end=budget_end)
    limit = SearchLimit(budget_flops=budget) if budget is not None else None
    (r,) = run_searches([MCTS(game, cfg, ev)], [game.new_state()], ev, limits=[limit])
    return r


def test_cap_forces_the_last_evaluation_shallow_and_reserve_does_not():
    deep = ExitAsToldEvaluator(exit=None)  # a search that always wants the deepest exit
    capped = _search("cap", deep, budget=10.0)
    assert capped.exits.tolist() == [2, 2, 1] and capped.flops == 10.0
    reserved = _search("reserve", deep, budget=10.0)
    assert reserved.exits.tolist() == [2, 2] and reserved.flops == 8.0  # 2 FLOPs left unspent


def test_reserve_keeps_the_deepest_cost_free_until_the_end():
    shallow = ExitAsToldEvaluator(exit=0)  # every row stops at exit 0 (1 FLOP)
    capped = _search("cap", shallow)  # B = 2 x 4 = 8
    assert capped.exits.tolist() == [0] * 8 and capped.flops == 8.0
    reserved = _search("reserve", shallow)  # stops once 4 FLOPs no longer fit: 5 spent, 3 left
    assert reserved.exits.tolist() == [0] * 5 and reserved.flops == 5.0
    assert reserved.budget_flops - reserved.flops < COSTS[-1]


def test_budget_end_is_validated_in_config_and_spec():
    with pytest.raises(ConfigError, match="budget_end"):
        MCTSConfig(budget_end="late").validate("mcts")
    assert parse_spec("net:a.pt,mode=dynamic,budget_end=reserve")[1]["budget_end"] == "reserve"
    with pytest.raises(DPVError, match="unknown budget_end 'late'"):
        parse_spec("net:a.pt,budget_end=late")
