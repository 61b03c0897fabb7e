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


# ---------------------------------------------------------------- the engine's handicap commands
from dpv.config import GameConfig  # noqa: E402
from dpv.play.gtp import GTPEngine  # noqa: E402
from dpv.players.spec import make_player  # noqa: E402


def _engine(size):
    return GTPEngine(lambda c: make_player("random", c), GameConfig(board_size=size, komi=0.5))


def test_19x19_fixed_handicap_is_openspiels_handicap_parameter(tmp_path):
    e = _engine(19)
    assert e.handle("fixed_handicap 4") == "= D4 Q16 D16 Q4\n\n"
    assert e.cfg.handicap == 4 and e.state.history() == [] and e.state.current_player() == 1
    assert e.handle("undo") == "? cannot undo\n\n"
    assert e.handle("genmove w").startswith("= ")
    path = tmp_path / "h4.sgf"
    assert e.handle(f"printsgf {path}") == "=\n\n"
    assert "HA[4]AB[dp][pd][dd][pp]" in path.read_text()
    again = _engine(19)
    assert again.handle(f"loadsgf {path}") == "= black\n\n"
    assert again.cfg.handicap == 4 and again.state.history() == e.state.history()
    assert again.handle("clear_board") == "=\n\n" and again.cfg.handicap == 0


def test_free_stones_and_small_boards_are_black_moves_with_white_passes():
    e = _engine(19)
    assert e.handle("set_free_handicap D4 Q16 K10") == "=\n\n"  # not a fixed set: moves
    assert e.cfg.handicap == 0 and e.state.history() == [60, 361, 300, 361, 180]
    assert e.state.current_player() == 1 and e.setup == 5
    nine = _engine(9)
    assert nine.handle("place_free_handicap 3") == "= C3 G7 C7\n\n"
    assert nine.handle("fixed_handicap 2") == "? board not empty\n\n"
    assert nine.handle("set_free_handicap A1") == "? set_free_handicap needs at least 2 stones\n\n"
