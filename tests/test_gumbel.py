"""Gumbel root search (dpv.mcts.gumbel inside DPV-MCTS): the completed-Q policy target,
sequential halving's visit counts, the budget, the survivor, batching across games."""
import numpy as np
import pytest
import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig, from_dict
from dpv.errors import ConfigError
from dpv.evaluator import Evaluation, Evaluator
from dpv.games import make_game
from dpv.mcts import MCTS, UniformEvaluator, make_evaluator, run_searches, select_action
from dpv.mcts import gumbel
from dpv.nets import build_policy_value_net

TTT = GameConfig(name="tic_tac_toe")
LOGITS = np.array([2.0, 1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, -0.5])


class DepthEvaluator(Evaluator):
    """Fixed logits over the nine cells; the value (for the player to move) depends only on
    how far below the root a position is: the root's, one per first move, then `deep`."""

    wants_states = True
    wants_planes = False

    def __init__(self, root_value: float, first: dict[int, float], deep: float):
        self.root_value, self.first, self.deep = root_value, first, deep

    def _value(self, history: list[int]) -> float:
        if not history:
            return self.root_value
        return self.first.get(history[0], 0.0) if len(history) == 1 else self.deep

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        p = np.where(legal_mask, np.exp(LOGITS), 0.0)
        values = np.array([self._value(s.history()) for s in states], dtype=np.float32)
        n = len(states)
        return Evaluation(p / p.sum(1, keepdims=True), values, np.zeros(n, np.int64), np.zeros(n))


def _gumbel_cfg(sims, m, scale=0.0, leaves=1, **kw):
    return MCTSConfig(simulations=sims, root="gumbel", gumbel_m=m, gumbel_scale=scale,
                      leaves_per_call=leaves, **kw)


# Below move 2 (O's v_hat -0.6) a first grandchild (-0.3 for O) is better than
# v_mix = (-0.6 - 0.3) / 2: pi' ~ 0.97 there, so one visit at a time (leaves=1) the next
# visit goes below that grandchild, to depth 3 (0.3 for O, -0.3 for X); with both visits in
# one call (leaves=8) virtual loss on the pending grandchild sends the second to another.
@pytest.mark.parametrize("leaves, q2, action", [(1, (0.6 + 0.3 - 0.3) / 3, 1),
                                                (8, (0.6 + 0.3 + 0.3) / 3, 2)])
def test_policy_target_is_softmax_of_logits_plus_sigma_of_completed_q(leaves, q2, action):
    # empty board, no noise: the four largest logits (moves 0-3) are sampled; one
    # simulation evaluates the root, then 8 simulations in 2 phases of 4
    game = make_game(TTT)
    first = {0: 0.4, 1: -0.2, 2: -0.6, 3: 0.0}  # for O to move: Q from X's view is minus
    ev = DepthEvaluator(root_value=0.1, first=first, deep=0.3)
    r = MCTS(game, _gumbel_cfg(9, m=4, leaves=leaves), ev).search(game.new_state())
    # phase 1: one visit each; Q = 0.6, 0.2, 0.0, -0.4 for moves 2, 1, 3, 0 keeps 2 and 1.
    # Phase 2: two more visits each. Below move 1 (v_hat -0.2) the first grandchild is worse
    # than v_mix = (-0.2 - 0.3) / 2, so the second visit takes another grandchild
    assert r.visits.tolist() == [1, 3, 3, 1, 0, 0, 0, 0, 0]
    q = np.array([-0.4, (0.2 + 0.3 + 0.3) / 3, q2, 0.0])
    prior = np.exp(LOGITS) / np.exp(LOGITS).sum()
    n = np.array([1.0, 3.0, 3.0, 1.0])
    v_mix = (0.1 + n.sum() * (prior[:4] @ q) / prior[:4].sum()) / (1 + n.sum())
    completed = np.concatenate([q, np.full(5, v_mix)])
    z = LOGITS + (50 + 3) * 1.0 * (completed + 1) / 2  # sigma: c_visit 50, max N 3, c_scale 1
    target = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert r.policy == pytest.approx(target, rel=1e-6, abs=1e-12)  # values come as float32
    # the better survivor by logit + sigma(Q): 1.5 + 26.5 * (1 + 0.267) against 1 + 26.5 * (1 + q2)
    assert r.action == action


@pytest.mark.parametrize("sims, counts", [(17, [6, 6, 2, 2]), (11, [5, 3, 1, 1]),
                                          (5, [2, 2, 0, 0])])
@pytest.mark.parametrize("leaves", [1, 8])
def test_sequential_halving_with_m4_visits_in_equal_phases_round_robin(sims, counts, leaves):
    # equal values and priors, no noise: moves 0-3 are sampled in that order and 0, 1
    # survive the halving. The sims - 1 after the root's evaluation go in 2 equal phases,
    # round-robin: 16 = 4 x 2 + 2 x 4; 10 = (2, 1, 1, 1) + (3, 2); 4 = (1, 1) + (1, 1)
    game = make_game(TTT)
    r = MCTS(game, _gumbel_cfg(sims, m=4, leaves=leaves), UniformEvaluator()).search(game.new_state())
    assert r.simulations == sims
    assert r.visits.tolist() == counts + [0] * 5


def test_visit_shares_below_the_root_track_the_improved_policy():
    prior = np.array([0.5, 0.3, 0.2])
    visits = np.zeros(3)
    q = np.full(3, 0.25)
    for _ in range(10):  # equal Q everywhere: pi' = prior, so visits go 5 / 3 / 2
        a = gumbel.interior_choice(prior, q, visits, 0.25, 50.0, 1.0)
        visits[a] += 1
    assert visits.tolist() == [5, 3, 2]


@pytest.mark.parametrize("k", [3, 7, 30, 82])  # the list path (<= gumbel.SMALL) and numpy's
def test_interior_rule_is_argmax_of_improved_policy_minus_visit_share(k):
    rng = np.random.default_rng(k)
    for _ in range(300):
        prior = rng.dirichlet(np.ones(k))
        visits = rng.integers(0, 4, k).astype(float) * (rng.random(k) < 0.6)
        q = np.where(visits > 0, rng.uniform(-1, 1, k), 0.0)
        raw = float(rng.uniform(-1, 1))
        pi = gumbel.improved_policy(prior, q, visits, raw, 50.0, 1.0)
        expected = int(np.argmax(pi - visits / (1 + visits.sum())))
        assert gumbel.interior_choice(prior, q, visits, raw, 50.0, 1.0) == expected


def test_mixed_value_weights_visited_q_by_prior():
    prior = np.array([0.5, 0.3, 0.2])
    q = np.array([0.6, -0.2, 0.0])
    visits = np.array([2.0, 1.0, 0.0])
    expected = (0.1 + 3 * (0.5 * 0.6 + 0.3 * -0.2) / 0.8) / 4
    assert gumbel.mixed_value(0.1, prior, q, visits) == pytest.approx(expected)
    assert gumbel.completed_q(0.1, prior, q, visits).tolist() == pytest.approx([0.6, -0.2, expected])
    assert gumbel.mixed_value(0.1, prior, q, np.zeros(3)) == pytest.approx(0.1)


def test_without_noise_the_survivor_is_the_best_action_even_against_the_prior():
    game = make_game(TTT)
    # move 4 leads to a position worth -0.9 for O (0.9 for X); the prior prefers move 0
    ev = DepthEvaluator(root_value=0.0, first={4: -0.9}, deep=0.0)
    r = MCTS(game, _gumbel_cfg(40, m=9), ev).search(game.new_state())
    assert r.action == 4
    assert int(np.argmax(r.policy)) == 4
    assert select_action(r, 1.0, np.random.default_rng(0)) == 4  # the search's own choice


@pytest.mark.parametrize("history, win", [([0, 3, 1, 4], 2), ([0, 4, 1, 5], 2), ([4, 0, 2, 1], 6)])
@pytest.mark.parametrize("seed", range(4))
def test_tic_tac_toe_win_in_one_with_16_simulations(history, win, seed):
    game = make_game(TTT)
    state = game.state_from_actions(history)
    r = MCTS(game, _gumbel_cfg(16, m=16, scale=1.0), UniformEvaluator(),
             np.random.default_rng(seed)).search(state)
    assert r.action == win


@pytest.fixture(scope="module")
def go5_net():
    game = make_game(GameConfig(name="go", board_size=5))
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=3, channels=16, exits=(1, 2, 3), value_hidden=16),
                                 game).eval()
    return game, net


@pytest.mark.parametrize("mode, exit", [("dynamic", -1), ("dynamic_static", -1), ("fixed_budget", 0)])
def test_flops_never_exceed_the_budget_and_are_nearly_spent(go5_net, mode, exit):
    game, net = go5_net
    cfg = _gumbel_cfg(100, m=8, scale=1.0, leaves=8, exit_mode=mode, exit=exit, n_ref=20,
                      tau0=0.12)
    ev = make_evaluator(net, cfg)
    states = [game.new_state()]
    for a in (6, 12, 18):
        states.append(states[-1].child(a))
    searches = [MCTS(game, cfg, ev, np.random.default_rng(i)) for i in range(len(states))]
    cheapest = ev.exit_cost(0)
    for r, s in zip(run_searches(searches, states, ev), states):
        assert r.flops <= r.budget_flops == pytest.approx(20 * net.flops().fixed(2))
        assert r.budget_flops - r.flops < cheapest
        assert r.action in s.legal_actions()
        assert r.policy.sum() == pytest.approx(1.0)
        assert np.all(r.policy[np.setdiff1d(np.arange(game.num_actions), s.legal_actions())] == 0)


def test_batched_gumbel_searches_match_each_tree_alone():
    game = make_game(TTT)
    ev = DepthEvaluator(root_value=0.0, first={4: -0.5, 0: 0.3}, deep=0.1)
    cfg = _gumbel_cfg(20, m=4, scale=1.0, leaves=4)
    states = [game.state_from_actions(h) for h in ([], [4], [0, 4])]
    together = run_searches([MCTS(game, cfg, ev, np.random.default_rng(i)) for i in range(3)],
                            states, ev)
    for i, (st, r) in enumerate(zip(states, together)):
        alone = MCTS(game, cfg, ev, np.random.default_rng(i)).search(st)
        assert alone.visits.tolist() == r.visits.tolist()
        assert alone.policy == pytest.approx(r.policy)
        assert alone.action == r.action


def test_no_dirichlet_noise_at_a_gumbel_root():
    game = make_game(TTT)
    ev = DepthEvaluator(root_value=0.0, first={4: -0.5}, deep=0.1)
    cfg = _gumbel_cfg(20, m=4, scale=1.0)
    a = MCTS(game, cfg, ev, np.random.default_rng(3)).search(game.new_state(), add_noise=True)
    b = MCTS(game, cfg, ev, np.random.default_rng(3)).search(game.new_state(), add_noise=False)
    assert a.policy == pytest.approx(b.policy) and a.action == b.action


def test_reused_subtree_gives_the_halving_every_simulation():
    game = make_game(TTT)
    m = MCTS(game, _gumbel_cfg(17, m=4), UniformEvaluator())
    state = game.new_state()
    r = m.search(state)
    state.apply(r.action)
    m.advance(r.action)
    before = m.tree.visits[m.tree.children(m.tree.root)].sum()
    r2 = m.search(state)  # the root was evaluated last move: all 17 go to its children
    assert r2.simulations == 17
    assert r2.visits.sum() == before + 17


def test_unknown_root_rule_names_the_field():
    with pytest.raises(ConfigError, match=r"mcts.root: unknown root rule 'ucb'"):
        from_dict(MCTSConfig, {"root": "ucb"}, "mcts")
    with pytest.raises(ConfigError, match=r"mcts.gumbel_m"):
        from_dict(MCTSConfig, {"gumbel_m": 0}, "mcts")
