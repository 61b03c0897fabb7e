"""The fast paths of the search: lazy history planes in SpielState and deferred expansion
in the tree must give exactly what the eager versions gave."""
from __future__ import annotations

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game


def _stones(game, s):
    """(player 0, player 1) stones straight from pyspiel's observation_tensor list."""
    t = np.asarray(s.observation_tensor(0), dtype=np.float32).reshape(
        game.spiel_game.observation_tensor_shape())
    p0, p1 = {"go": (0, 1), "tic_tac_toe": (2, 1), "connect_four": (0, 1)}[game.name]
    return t[p0].astype(np.int8), t[p1].astype(np.int8)


def _reference_observation(game, actions):
    """Planes built the old, eager way: replay the game, one board per position."""
    s = game.spiel_game.new_initial_state()
    boards = [_stones(game, s)]
    for a in actions:
        s.apply_action(a)
        boards.append(_stones(game, s))
    h = game.history
    planes = np.zeros(game.observation_shape, dtype=np.float32)
    me = len(actions) % 2
    for t in range(h):
        if len(boards) - 1 - t < 0:
            break
        stones = boards[len(boards) - 1 - t]
        planes[2 * t] = stones[me]
        planes[2 * t + 1] = stones[1 - me]
    if me == 0:
        planes[2 * h] = 1.0
    return planes


@pytest.mark.parametrize("board, moves, seed", [(5, 150, 4), (5, 150, 1), (9, 200, 2), (7, 150, 3)])
def test_lazy_history_planes_equal_eager_ones_after_captures_passes_and_clones(board, moves, seed):
    game = make_game(GameConfig(name="go", board_size=board))
    rng = np.random.default_rng(seed)
    state = game.new_state()
    kept = []  # (state, its actions): clones taken along the way, some observed, some not
    actions = []
    captures = passes = 0
    for i in range(moves):
        if state.is_terminal():
            break
        legal = state.legal_actions()
        a = int(rng.choice(legal)) if rng.random() > 0.08 else game.num_actions - 1
        if a not in legal:
            a = legal[-1]
        before = sum(int(x.sum()) for x in _stones(game, state.spiel_state))
        for x, y in zip(game.stones(state.spiel_state), _stones(game, state.spiel_state)):
            np.testing.assert_array_equal(x, y)
        if rng.random() < 0.3:
            kept.append((state.clone(), list(actions)))
        if rng.random() < 0.3:  # observe now: memoises some boards, not others
            np.testing.assert_array_equal(state.observation(), _reference_observation(game, actions))
        state.apply(a)
        actions.append(a)
        after = sum(int(x.sum()) for x in _stones(game, state.spiel_state))
        captures += after < before
        passes += a == game.num_actions - 1
        if kept and rng.random() < 0.2:  # a kept clone moves on by itself
            j = int(rng.integers(len(kept)))
            st, acts = kept[j]
            if not st.is_terminal():
                b = int(rng.choice(st.legal_actions()))
                child = st.clone()
                st.apply(b)
                kept[j] = (st, acts + [b])
                kept.append((child, list(acts)))
    assert captures > 0 and passes > 0
    np.testing.assert_array_equal(state.observation(), _reference_observation(game, actions))
    assert state.history() == actions and state.move_number() == len(actions)
    for st, acts in kept:
        np.testing.assert_array_equal(st.observation(), _reference_observation(game, acts))
        assert st.history() == acts


def test_lazy_history_on_tic_tac_toe_and_connect_four():
    for name in ("tic_tac_toe", "connect_four"):
        game = make_game(GameConfig(name=name))
        rng = np.random.default_rng(0)
        s = game.new_state()
        acts = []
        while not s.is_terminal():
            c = s.clone()
            a = int(rng.choice(s.legal_actions()))
            s.apply(a)
            acts.append(a)
            np.testing.assert_array_equal(c.observation(), _reference_observation(game, acts[:-1]))
            np.testing.assert_array_equal(s.observation(), _reference_observation(game, acts))


from dpv.config import MCTSConfig  # noqa: E402
from dpv.evaluator import Evaluation, Evaluator  # noqa: E402
from dpv.mcts import MCTS, RolloutEvaluator, UniformEvaluator  # noqa: E402


def _check_tree_invariants(t, root_evaluated: bool):
    n = t.size
    vis = t.visits[:n]
    assert np.array_equal(vis, np.round(vis)), "virtual loss left behind"
    np.testing.assert_allclose(t.u[:n], t.prior[:n] / (1.0 + vis))
    seen = vis > 0
    np.testing.assert_allclose(t.q[:n][seen], t.value_sum[:n][seen] / vis[seen])
    assert np.all(t.q[:n][~seen] == t.fpu)
    for node in range(n):
        if t.first_child[node] == -1:
            continue
        sl = t.children(node)
        below = t.visits[sl].sum()
        own = 1 if (node != t.root or root_evaluated) else 0
        if not t.terminal[node]:
            assert t.visits[node] == below + own
        assert node not in t.deferred  # expanded nodes keep no pending evaluation
    for node in t.deferred:  # evaluated, never passed through since
        assert t.first_child[node] == -1 and t.visits[node] >= 1


@pytest.mark.parametrize("moves", [0, 30])
def test_uniform_without_legal_mask_searches_exactly_like_with_it(moves):
    game = make_game(GameConfig(name="go", board_size=9))
    rng = np.random.default_rng(moves)
    state = game.new_state()
    for _ in range(moves):
        state.apply(int(rng.choice(state.legal_actions()[:-1])))
    cfg = MCTSConfig(simulations=400, leaves_per_call=8)
    fast = MCTS(game, cfg, UniformEvaluator(), np.random.default_rng(0))
    full = MCTS(game, cfg, UniformEvaluator(wants_planes=True), np.random.default_rng(0))
    assert not fast.evaluator.wants_legal and full.evaluator.wants_legal
    a, b = fast.search(state), full.search(state)
    np.testing.assert_array_equal(a.visits, b.visits)
    assert a.simulations == b.simulations == 400
    _check_tree_invariants(fast.tree, True)
    _check_tree_invariants(full.tree, True)


def test_deferred_expansion_keeps_priors_and_survives_reuse():
    game = make_game(GameConfig(name="go", board_size=5))

    class Skewed(Evaluator):  # prefers low action ids, puts mass on illegal moves too
        def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
            n, a = legal_mask.shape
            p = np.tile(np.linspace(2.0, 1.0, a), (n, 1))
            return Evaluation(p, np.full(n, 0.1), np.zeros(n, np.int64), np.zeros(n))

    m = MCTS(game, MCTSConfig(simulations=300, leaves_per_call=4), Skewed(),
             np.random.default_rng(0))
    state = game.state_from_actions([12, 6])
    r = m.search(state)
    t = m.tree
    _check_tree_invariants(t, True)
    legal = np.asarray(state.legal_actions())
    sl = t.children(t.root)
    want = np.linspace(2.0, 1.0, game.num_actions)[legal]
    np.testing.assert_allclose(t.prior[sl], want / want.sum())
    # every expanded node's priors are the renormalised row over its own legal moves
    for node in range(t.size):
        if t.first_child[node] != -1:
            acts = t.action[t.children(node)]
            assert set(acts) == set(t.states[node].legal_actions())
            assert t.prior[t.children(node)].sum() == pytest.approx(1.0)
    # reuse: play a move whose child was evaluated; the new root expands from its record
    a = int(np.argmax(r.visits))
    m.advance(a)
    state.apply(a)
    r2 = m.search(state)
    assert r2.simulations == 300
    _check_tree_invariants(m.tree, True)
    # a leaf reached once and then made the root: expanded at begin, from its stored row
    m2 = MCTS(game, MCTSConfig(simulations=100, leaves_per_call=4), Skewed(),
              np.random.default_rng(0))
    s2 = game.new_state()
    r3 = m2.search(s2)
    once = [c for c in range(*m2.tree.children(m2.tree.root).indices(m2.tree.size))
            if m2.tree.visits[c] == 1 and c in m2.tree.deferred]
    assert once
    act = int(m2.tree.action[once[0]])
    m2.advance(act)
    s2.apply(act)
    assert m2.tree.root == 0 and 0 in m2.tree.deferred
    r4 = m2.search(s2)
    assert r4.visits.sum() == pytest.approx(100)  # 1 kept (the root's evaluation) - 1 + 100
    _check_tree_invariants(m2.tree, True)


def test_rollout_search_tree_invariants_with_terminals():
    game = make_game(GameConfig(name="tic_tac_toe"))
    m = MCTS(game, MCTSConfig(simulations=500, leaves_per_call=4), RolloutEvaluator(1),
             np.random.default_rng(0))
    r = m.search(game.state_from_actions([0, 3]))
    assert r.simulations == 500
    _check_tree_invariants(m.tree, True)


def test_child_equals_clone_then_apply():
    game = make_game(GameConfig(name="go", board_size=5))
    rng = np.random.default_rng(3)
    s = game.new_state()
    for _ in range(25):
        a = int(rng.choice(s.legal_actions()))
        c = s.child(a)
        d = s.clone()
        d.apply(a)
        assert c.history() == d.history() and c.current_player() == d.current_player()
        assert c.legal_actions() == d.legal_actions() and c.is_terminal() == d.is_terminal()
        np.testing.assert_array_equal(c.observation(), d.observation())
        s = c if rng.random() < 0.5 else d
        if s.is_terminal():
            break


def test_games_and_states_still_pickle():
    import pickle

    game = make_game(GameConfig(name="go", board_size=5))
    s = game.state_from_actions([6, 12, 7])
    s.observation()  # the observer buffer exists now; it must not travel
    g2 = pickle.loads(pickle.dumps(game))
    s2 = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(s2.observation(), s.observation())
    np.testing.assert_array_equal(g2.state_from_actions([6, 12, 7]).observation(), s.observation())
