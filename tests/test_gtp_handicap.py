"""Handicap placement: the GTP fixed stones, as GNU Go and OpenSpiel place them."""
import os
import subprocess

import numpy as np
import pyspiel
import pytest

from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.play.gtp_handicap import HandicapError, fixed_points, max_handicap, uses_parameter

GNUGO = "/usr/games/gnugo"


def test_largest_handicaps_follow_the_gtp_spec():
    assert [max_handicap(n) for n in (5, 7, 9, 13, 19)] == [0, 4, 9, 9, 9]
    with pytest.raises(HandicapError, match="no handicap on a 5x5"):
        fixed_points(5, 2)
    with pytest.raises(HandicapError, match="2 to 9"):
        fixed_points(9, 10)


@pytest.mark.parametrize("n", range(2, 10))
def test_openspiel_handicap_parameter_places_the_fixed_19x19_stones(n):
    state = pyspiel.load_game("go", {"board_size": 19, "handicap": n}).new_initial_state()
    board = np.array(state.observation_tensor(0)).reshape(4, 19, 19)
    assert set(np.flatnonzero(board[0].reshape(-1))) == set(fixed_points(19, n))
    assert state.current_player() == 1  # White moves first
    assert uses_parameter(19, set(fixed_points(19, n))) and not uses_parameter(9, set(fixed_points(9, n)))


@pytest.mark.skipif(not os.path.exists(GNUGO), reason="GNU Go not installed")
@pytest.mark.parametrize("size", [7, 9, 13, 19])
def test_fixed_stones_are_gnugos(size):
    for n in range(2, max_handicap(size) + 1):
        out = subprocess.run([GNUGO, "--mode", "gtp"], capture_output=True, text=True, timeout=60,
                             input=f"boardsize {size}\nclear_board\nfixed_handicap {n}\nquit\n").stdout
        theirs = out.split("\n\n")[2]
        assert theirs.startswith("= ")
        assert {vertex_to_action(v, size) for v in theirs[2:].split()} == set(fixed_points(size, n)), \
            (size, n, theirs, [action_to_vertex(a, size) for a in fixed_points(size, n)])
