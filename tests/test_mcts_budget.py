"""Budgeted DPV-MCTS with a real multi-exit network: budget modes, exit caps, dynamic tau."""
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.mcts import MCTS, ExitCosts, UniformEvaluator, make_evaluator, run_searches
from dpv.nets import build_policy_value_net

GO5 = GameConfig(name="go", board_size=5)


@pytest.fixture(scope="module")
def game():
    return make_game(GO5)


@pytest.fixture(scope="module")
def net(game):
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=3, channels=16, exits=(1, 2, 3), value_hidden=16),
                                 game).eval()
    with torch.no_grad():  # sharper first exit: its confidence spreads over ~0.05..0.3
        net.heads[0].policy_fc.weight.mul_(30.0)
    return net


def _positions(game, n, seed=0):
    rng = np.random.default_rng(seed)
    states = []
    for _ in range(n):
        s = game.new_state()
        for _ in range(int(rng.integers(0, 8))):
            s.apply(int(rng.choice(s.legal_actions()[:-1])))
        states.append(s)
    return states


def _run(game, net, n_ref, mode, exit=-1, tau0=0.12, alpha=0.3, positions=4, leaves=8):
    cfg = MCTSConfig(exit_mode=mode, exit=exit, n_ref=n_ref, tau0=tau0, alpha=alpha,
                     leaves_per_call=leaves)
    ev = make_evaluator(net, cfg)
    states = _positions(game, positions)
    searches = [MCTS(game, cfg, ev, np.random.default_rng(i)) for i in range(len(states))]
    return run_searches(searches, states, ev, add_noise=False), ev


@pytest.mark.parametrize("mode, exit", [("fixed_budget", 0), ("fixed_budget", 1),
                                        ("fixed_budget", 2), ("dynamic_static", -1),
                                        ("dynamic", -1)])
def test_budget_is_never_exceeded_and_nearly_spent(game, net, mode, exit):
    results, ev = _run(game, net, n_ref=20, mode=mode, exit=exit)
    cheapest = ev.exit_cost(exit % 3) if mode == "fixed_budget" else ev.exit_cost(0)
    for r in results:
        assert r.budget_flops == pytest.approx(20 * net.flops().fixed(2))
        assert r.flops <= r.budget_flops
        assert r.budget_flops - r.flops < cheapest  # stopped only when nothing more fit
        assert r.exit_histogram.sum() == len(r.exits)
        assert r.flops == pytest.approx(sum(ev.exit_cost(int(k)) for k in r.exits))


def test_exit_0_runs_flops_ratio_times_the_simulations_of_the_last_exit(game, net):
    last, _ = _run(game, net, n_ref=30, mode="fixed_budget", exit=2)
    first, _ = _run(game, net, n_ref=30, mode="fixed_budget", exit=0)
    ratio = net.flops().fixed(2) / net.flops().fixed(0)
    for a, b in zip(first, last):
        assert b.simulations == 30
        assert a.simulations == pytest.approx(ratio * b.simulations, rel=0.05)
        assert a.exit_histogram[0] == a.simulations and b.exit_histogram[2] == 30


def test_dynamic_threshold_goes_deeper_as_the_budget_is_spent(game, net):
    (r,), _ = _run(game, net, n_ref=60, mode="dynamic", alpha=0.3, positions=1)
    deep = r.exits > 0
    third = len(deep) // 3
    assert np.all(np.diff(r.fractions) >= 0)  # r is recorded and only grows
    assert deep[:third].mean() + 0.2 < deep[-third:].mean()
    (s,), _ = _run(game, net, n_ref=60, mode="dynamic_static", positions=1)
    assert r.exit_histogram[0] < s.exit_histogram[0]  # alpha > 0 stops fewer rows early


def test_dynamic_search_under_budget_runs_more_simulations_than_deepest_exit(game, net):
    (dyn,), _ = _run(game, net, n_ref=30, mode="dynamic_static", tau0=0.1, positions=1)
    assert dyn.simulations > 30 and dyn.exit_histogram[0] > 0


def test_fixed_mode_counts_simulations_and_reports_flops(game, net):
    cfg = MCTSConfig(exit_mode="fixed", exit=1, simulations=17, leaves_per_call=4)
    ev = make_evaluator(net, cfg)
    r = MCTS(game, cfg, ev, np.random.default_rng(0)).search(game.new_state())
    assert r.simulations == 17 and r.budget_flops is None
    assert r.exit_histogram.tolist() == [0, 17, 0]
    assert r.flops == pytest.approx(17 * net.flops().fixed(1))


def test_budget_mode_with_a_free_evaluator_is_a_clear_error(game):
    with pytest.raises(DPVError, match="n_ref=10"):
        MCTS(game, MCTSConfig(exit_mode="dynamic", n_ref=10), UniformEvaluator())


def torch_counted_costs(net):
    """Per-exit FLOPs measured by torch's FlopCounterMode, not read from the net's table:
    staged[k] = one row stopped at exit k by the staged forward (every earlier head included),
    deepest = one row through forward_to(last exit)."""
    staged = []
    for k in range(net.num_exits):
        with torch.no_grad(), FlopCounterMode(display=False) as c:
            net.staged_forward(net.example_input(1), lambda j, out, rows, k=k: torch.full((len(rows),), j == k))
        staged.append(c.get_total_flops())
    with torch.no_grad(), FlopCounterMode(display=False) as c:
        net.forward_to(net.example_input(1), net.num_exits - 1)
    return np.asarray(staged, dtype=np.float64), float(c.get_total_flops())


def test_exit_costs_read_from_the_evaluator_match_torch_counter(net):
    ev = make_evaluator(net, MCTSConfig(exit_mode="dynamic"))
    costs = ExitCosts.of(ev)
    staged, deepest = torch_counted_costs(net)
    np.testing.assert_array_equal(costs.per_exit, staged)
    assert costs.deepest == deepest


@pytest.mark.parametrize("mode, exit", [("fixed_budget", 0), ("dynamic", -1)])
def test_search_flops_are_rows_evaluated_per_exit_times_torch_counted_cost(game, net, mode, exit):
    """The FLOPs a search reports, against counts made outside the search: rows that reached
    each head (forward hooks on the net) and the per-exit cost from FlopCounterMode."""
    staged, deepest = torch_counted_costs(net)
    net.flops()  # the analytic table runs every module once (then cached): not a search's row
    reached = np.zeros(net.num_exits, dtype=np.int64)
    hooks = [h.register_forward_hook(lambda m, args, out, k=k: reached.__setitem__(k, reached[k] + args[0].shape[0]))
             for k, h in enumerate(net.heads)]
    try:
        results, _ = _run(game, net, n_ref=20, mode=mode, exit=exit, positions=2)
    finally:
        for h in hooks:
            h.remove()
    stopped_at = reached - np.append(reached[1:], 0)  # rows that reached head k but not head k + 1
    assert sum(r.flops for r in results) == pytest.approx(float(stopped_at @ staged), rel=1e-12)
    np.testing.assert_array_equal(sum(r.exit_histogram for r in results), stopped_at)
    for r in results:
        assert r.budget_flops == pytest.approx(20 * deepest, rel=1e-12)
        assert r.flops <= r.budget_flops
    if mode == "dynamic":
        assert stopped_at[0] > 0 and stopped_at[-1] > 0  # both cheap and deep evaluations counted
