"""The fast paths of the search: lazy history planes in SpielState and deferred expansion
in the tree must give exactly what the eager versions gave."""
from __future__ import annotations

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game


def _reference_observation(game, actions):
    """Planes built the old, eager way: replay the game, one board per position."""
    s = game.spiel_game.new_initial_state()
    boards = [game.stones(s)]
    for a in actions:
        s.apply_action(a)
        boards.append(game.stones(s))
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
        before = sum(int(x.sum()) for x in game.stones(state.spiel_state))
        if rng.random() < 0.3:
            kept.append((state.clone(), list(actions)))
        if rng.random() < 0.3:  # observe now: memoises some boards, not others
            np.testing.assert_array_equal(state.observation(), _reference_observation(game, actions))
        state.apply(a)
        actions.append(a)
        after = sum(int(x.sum()) for x in game.stones(state.spiel_state))
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
