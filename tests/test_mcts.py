"""DPV-MCTS: selection, backup, correctness on known positions, legality, symmetry, reuse."""
import hashlib

import numpy as np
import pyspiel
import pytest

from dpv.config import GameConfig, MCTSConfig
from dpv.evaluator import Evaluation, Evaluator
from dpv.games import make_game
from dpv.mcts import (MCTS, RolloutEvaluator, Tree, UniformEvaluator, run_searches,
                      select_action, temperature_for_move)
from dpv.mcts.search import SearchResult

TTT = GameConfig(name="tic_tac_toe")


class ExactTicTacToe(Evaluator):
    """Uniform prior, exact minimax value of the position for the player to move."""

    wants_states = True
    wants_planes = False

    def __init__(self):
        self._memo = {}

    def _value(self, s) -> float:  # negamax value for the player to move in non-terminal s
        key = str(s)
        if key not in self._memo:
            me = s.current_player()
            self._memo[key] = max(
                c.returns()[me] if c.is_terminal() else -self._value(c)
                for c in (s.child(a) for a in s.legal_actions()))
        return self._memo[key]

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        n = len(states)
        values = np.array([self._value(st.spiel_state) for st in states], dtype=np.float32)
        m = legal_mask.astype(np.float32)
        return Evaluation(m / m.sum(1, keepdims=True), values, np.zeros(n, np.int64), np.zeros(n))


class CountingEvaluator(Evaluator):
    """Uniform evaluator that records each call's batch size."""


    def __init__(self):
        self.calls = []

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        self.calls.append(len(legal_mask))
        return UniformEvaluator().evaluate(planes, legal_mask)


class SymmetricEvaluator(Evaluator):
    """A deterministic pseudo-random evaluator that is exactly symmetric: it evaluates the
    canonical orientation of the planes (smallest bytes among the symmetries) and maps the
    policy back, so symmetric positions get bit-identical, permuted answers."""


    def __init__(self, game):
        self.game = game

    def _one(self, planes, mask):
        g = self.game
        variants = [g.transform_planes(planes, s).tobytes() for s in range(g.num_symmetries)]
        s = int(np.argmin([hashlib.sha1(v).hexdigest() for v in variants]))
        seed = int.from_bytes(hashlib.sha1(variants[s]).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        logits = rng.normal(size=g.num_actions)  # in the canonical frame
        # canonical -> original frame: invert the symmetry on the policy vector
        inv = next(t for t in range(g.num_symmetries)
                   if np.array_equal(g.transform_planes(g.transform_planes(planes, s), t), planes))
        logits = g.transform_policy(logits, inv)
        p = np.where(mask, np.exp(logits), 0.0)
        return p / p.sum(), np.tanh(rng.normal())

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        out = [self._one(p, m) for p, m in zip(planes, legal_mask)]
        n = len(out)
        return Evaluation(np.stack([o[0] for o in out]), np.array([o[1] for o in out]),
                          np.zeros(n, np.int64), np.zeros(n))


def _search(game, history, evaluator, sims, leaves=1, seed=0, **kw):
    cfg = MCTSConfig(simulations=sims, leaves_per_call=leaves, **kw)
    m = MCTS(game, cfg, evaluator, np.random.default_rng(seed))
    return m.search(game.state_from_actions(history), add_noise=False)


def test_puct_selection_matches_the_formula():
    t = Tree(fpu=-0.5)
    t.new_root(make_game(TTT).new_state())
    t.expand_many(np.array([0]), [np.array([3, 5, 7])], np.eye(9)[[3]] * 0.5 + np.eye(9)[[5]] * 0.3
                  + np.eye(9)[[7]] * 0.2)
    t.visits[[0, 1, 2, 3]] = [10, 6, 3, 0]
    t.value_sum[[1, 2]] = [3.0, 2.4]
    t.q[[1, 2]] = [0.5, 0.8]
    c = 1.5
    score = [q + c * p * np.sqrt(10) / (1 + n) for q, p, n in ((0.5, .5, 6), (0.8, .3, 3), (-0.5, .2, 0))]
    assert t.select_child(0, c) == 1 + int(np.argmax(score))
    assert list(t.prior[1:4]) == pytest.approx([0.5, 0.3, 0.2])


# (history, acceptable best moves): X to move wins; O blocks; X wins rather than blocks;
# O answers a corner-corner opening on an edge; X blocks a fork threat
TTT_POSITIONS = [
    ([0, 3, 1, 4], {2}),          # X: 0 1 -> wins at 2
    ([4, 0, 8, 2], {1}),          # O: 0 2 threatens 1; X must block
    ([0, 4, 1, 5], {2}),          # X wins at 2 (not block at 3)
    ([0, 4, 8], {1, 3, 5, 7}),    # O must take an edge, corners lose
    ([4, 0, 2], {6}),             # X: 4 2 threatens 6; O must block
]


@pytest.mark.parametrize("history, best", TTT_POSITIONS)
def test_exact_evaluator_finds_the_winning_or_blocking_move(history, best):
    game = make_game(TTT)
    r = _search(game, history, ExactTicTacToe(), sims=300, leaves=4)
    assert int(np.argmax(r.visits)) in best


@pytest.mark.parametrize("history, best", TTT_POSITIONS)
def test_rollout_evaluator_finds_the_winning_or_blocking_move(history, best):
    game = make_game(TTT)
    r = _search(game, history, RolloutEvaluator(4, np.random.default_rng(1)), sims=1500, leaves=4)
    assert int(np.argmax(r.visits)) in best


def test_illegal_moves_never_get_prior_mass():
    game = make_game(TTT)

    class Greedy(Evaluator):  # puts most of its mass on occupied squares
        def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
            n = len(legal_mask)
            p = np.where(legal_mask, 0.01, 1.0)
            return Evaluation(p, np.zeros(n), np.zeros(n, np.int64), np.zeros(n))

    m = MCTS(game, MCTSConfig(simulations=50), Greedy(), np.random.default_rng(0))
    state = game.state_from_actions([0, 4, 8])
    r = m.search(state, add_noise=False)
    t = m.tree
    sl = t.children(t.root)
    assert set(t.action[sl]) == set(state.legal_actions())
    assert t.prior[sl].sum() == pytest.approx(1.0)
    assert r.visits[[0, 4, 8]].sum() == 0 and r.policy[[0, 4, 8]].sum() == 0
    assert r.policy.sum() == pytest.approx(1.0)


def test_terminal_nodes_cost_no_evaluation():
    game = make_game(TTT)
    r = _search(game, [0, 3, 1, 4], ExactTicTacToe(), sims=200, leaves=2)
    assert r.simulations == 200
    assert len(r.exits) < 200  # winning at 2 is revisited at no evaluation
    assert r.value == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("board, moves", [(9, 0), (9, 37), (9, 120), (5, 30)])
def test_search_never_returns_an_illegal_move_on_go(board, moves):
    game = make_game(GameConfig(name="go", board_size=board))
    rng = np.random.default_rng(board + moves)
    state = game.new_state()
    for _ in range(moves):
        if state.is_terminal():
            break
        state.apply(int(rng.choice(state.legal_actions())))
    if state.is_terminal():
        pytest.skip("random game ended early")
    legal = state.legal_mask()
    for ev in (UniformEvaluator(), RolloutEvaluator(1, np.random.default_rng(0))):
        m = MCTS(game, MCTSConfig(simulations=64, leaves_per_call=8), ev, np.random.default_rng(0))
        r = m.search(state, add_noise=True)
        assert r.visits[~legal].sum() == 0 and r.policy[~legal].sum() == 0
        assert legal[select_action(r, 0.0, rng)]
        for _ in range(10):
            assert legal[select_action(r, 1.0, rng)]


def test_results_are_identical_across_the_8_symmetries():
    game = make_game(GameConfig(name="go", board_size=5))
    history = [6, 12, 7, 18, 13, 2]  # an asymmetric position
    ev = SymmetricEvaluator(game)
    base = _search(game, history, ev, sims=120, leaves=4)
    for s in range(1, 8):
        moved = [int(np.argmax(game.transform_policy(np.eye(game.num_actions)[a], s))) for a in history]
        r = _search(game, moved, ev, sims=120, leaves=4)
        np.testing.assert_array_equal(r.visits, game.transform_policy(base.visits, s))
        assert r.value == base.value


def test_noise_only_when_asked_and_it_does_not_stick():
    game = make_game(GameConfig(name="go", board_size=5))
    state = game.new_state()
    cfg = MCTSConfig(simulations=80, leaves_per_call=4, dirichlet_alpha=0.3)
    quiet = [MCTS(game, cfg, UniformEvaluator(), np.random.default_rng(i)).search(state, False)
             for i in range(2)]
    np.testing.assert_array_equal(quiet[0].visits, quiet[1].visits)
    m = MCTS(game, cfg, UniformEvaluator(), np.random.default_rng(5))
    noisy = m.search(state, True)
    assert not np.array_equal(noisy.visits, quiet[0].visits)
    t = m.tree
    assert np.allclose(t.prior[t.children(t.root)], 1.0 / game.num_actions)


def test_subtree_is_reused_after_advance():
    game = make_game(GameConfig(name="go", board_size=5))
    ev = RolloutEvaluator(1, np.random.default_rng(0))
    m = MCTS(game, MCTSConfig(simulations=200, leaves_per_call=4), ev, np.random.default_rng(0))
    state = game.new_state()
    r = m.search(state, False)
    a = int(np.argmax(r.visits))
    m.advance(a)
    state.apply(a)
    kept = m.tree.visits[m.tree.root]
    assert kept == r.visits[a] and kept > 1
    r2 = m.search(state, False)
    assert r2.simulations == 200 and r2.visits.sum() == pytest.approx(kept - 1 + 200)
    # a position the tree does not hold (advance not called): searched from scratch
    other = game.state_from_actions([0, 1])
    r3 = m.search(other, False)
    assert r3.visits.sum() == 199


def test_batched_searches_match_searching_each_tree_alone():
    game = make_game(GameConfig(name="go", board_size=5))
    ev = SymmetricEvaluator(game)
    cfg = MCTSConfig(simulations=40, leaves_per_call=4)
    states = [game.state_from_actions(h) for h in ([], [0], [6, 7], [12, 3, 4])]
    alone = [MCTS(game, cfg, ev, np.random.default_rng(0)).search(s, False) for s in states]
    counting = CountingEvaluator()
    searches = [MCTS(game, cfg, ev, np.random.default_rng(0)) for _ in states]
    together = run_searches(searches, states, ev, add_noise=False)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a.visits, b.visits)
    run_searches([MCTS(game, cfg, counting, np.random.default_rng(0)) for _ in states], states,
                 counting, add_noise=False)
    assert max(counting.calls) > 4 and max(counting.calls) <= 4 * 4  # rows of several trees
    assert sum(counting.calls) == 4 * 40


def test_select_action_and_temperature_schedule():
    cfg = MCTSConfig(temperature=1.0, temperature_moves=3)
    assert [temperature_for_move(cfg, n) for n in (0, 2, 3, 50)] == [1.0, 1.0, 0.0, 0.0]
    visits = np.array([0.0, 10.0, 30.0, 0.0])
    r = SearchResult(visits, visits / 40, 0.0, 40, 0.0, np.zeros(1, np.int64))
    rng = np.random.default_rng(0)
    assert select_action(r, 0.0, rng) == 2
    picks = [select_action(r, 1.0, rng) for _ in range(400)]
    assert set(picks) == {1, 2} and 0.15 < picks.count(1) / 400 < 0.35


def _play(game, searcher, opponent_rng, sims, mcts_player):
    state = game.new_state()
    while not state.is_terminal():
        if state.current_player() == mcts_player:
            a = int(np.argmax(searcher.search(state, add_noise=False).visits))
        else:
            legal = state.legal_actions()
            a = int(legal[opponent_rng.integers(len(legal))])
        searcher.advance(a)
        state.apply(a)
    return state.returns()[mcts_player]


def _rollout_vs_random(board, games, sims):
    game = make_game(GameConfig(name="go", board_size=board))
    rng = np.random.default_rng(11)
    wins = 0
    for g in range(games):
        searcher = MCTS(game, MCTSConfig(simulations=sims, leaves_per_call=4),
                        RolloutEvaluator(1, np.random.default_rng(g)), np.random.default_rng(g))
        wins += _play(game, searcher, rng, sims, mcts_player=g % 2) > 0
    return wins


def test_rollout_search_beats_random_on_5x5():
    assert _rollout_vs_random(board=5, games=6, sims=100) >= 6


@pytest.mark.slow
def test_rollout_search_at_200_sims_beats_random_on_9x9():
    assert _rollout_vs_random(board=9, games=20, sims=200) >= 18
