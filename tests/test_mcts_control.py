"""What the GTP engine asks of a search beyond a budget: a stop between steps (a deadline,
a command arriving), a per-search limit (a clock's share), reading the tree while it runs,
and growing one tree over many searches of the same position (open-ended analysis)."""
import numpy as np
import pytest
import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.games import make_game
from dpv.mcts import MCTS, SearchLimit, UniformEvaluator, make_evaluator, run_searches
from dpv.nets import build_policy_value_net


@pytest.fixture(scope="module")
def game():
    return make_game(GameConfig(name="go", board_size=5))


@pytest.fixture(scope="module")
def net(game):
    torch.manual_seed(0)
    return build_policy_value_net(NetConfig(blocks=2, channels=8, exits=(1, 2), value_hidden=8),
                                  game).eval()


def test_stop_ends_the_search_between_steps_with_the_tree_consistent(game):
    cfg = MCTSConfig(simulations=400, leaves_per_call=4)
    m = MCTS(game, cfg, UniformEvaluator())
    steps = []
    result = run_searches([m], [game.new_state()], m.evaluator,
                          stop=lambda: steps.append(m.simulations) or len(steps) >= 3)
    assert result[0].simulations == steps[-1] < 400  # ended after the third step
    root = m.tree.root
    # no virtual loss left behind: the root's visits are the simulations that reached it
    assert m.tree.visits[root] == result[0].simulations
    assert result[0].visits.sum() == result[0].simulations - 1  # the root's own evaluation


def test_limit_replaces_the_simulation_count_for_one_search(game):
    m = MCTS(game, MCTSConfig(simulations=50, leaves_per_call=1), UniformEvaluator())
    assert m.search(game.new_state()).simulations == 50
    m.reset()
    r = run_searches([m], [game.new_state()], m.evaluator, limits=[SearchLimit(simulations=7)])[0]
    assert r.simulations == 7


def test_flops_limit_sets_the_budget_and_r_of_a_budgeted_search(game, net):
    cfg = MCTSConfig(exit_mode="dynamic", n_ref=50, leaves_per_call=2)
    ev = make_evaluator(net, cfg)
    m = MCTS(game, cfg, ev)
    budget = 6.5 * ev.deepest_flops()
    r = run_searches([m], [game.new_state()], ev, limits=[SearchLimit(budget_flops=budget)])[0]
    assert r.budget_flops == budget and r.flops <= budget
    assert budget - r.flops < ev.exit_cost(0)  # spent until not even the cheapest exit fits
    assert r.fractions.max() <= 1.0 and r.fractions[0] == 0.0


def test_sync_lets_the_tree_be_read_while_the_search_runs(game):
    m = MCTS(game, MCTSConfig(simulations=200, leaves_per_call=4), UniformEvaluator())
    seen = []

    def stop():
        m.sync()
        seen.append((float(m.tree.visits[m.tree.root]), m.simulations))
        return False

    r = run_searches([m], [game.new_state()], m.evaluator, stop=stop)[0]
    assert all(visits == sims for visits, sims in seen)  # the arrays are up to date
    counts = [v for v, _ in seen]
    assert counts == sorted(counts) and counts[0] < counts[-1] < r.simulations


def test_searches_of_one_position_grow_one_tree(game):
    m = MCTS(game, MCTSConfig(simulations=30, leaves_per_call=2), UniformEvaluator())
    state = game.new_state()
    first = m.search(state)
    second = m.search(state)  # same position: the tree is kept and searched further
    assert second.simulations == 30
    assert second.visits.sum() == pytest.approx(first.visits.sum() + 30)
