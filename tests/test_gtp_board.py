"""showboard: the board drawn as GNU Go draws it (checked against GNU Go itself)."""
import os
import subprocess

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.play.gtp_board import captures, draw_board, is_hoshi

GNUGO = "/usr/games/gnugo"
needs_gnugo = pytest.mark.skipif(not os.path.exists(GNUGO), reason="GNU Go not installed")


def _partial_random_game(size, seed, moves):
    game = make_game(GameConfig(board_size=size, max_game_length=4 * size * size))
    rng = np.random.default_rng(seed)
    st = game.new_state()
    pass_action = size * size
    while len(st.history()) < moves and not st.is_terminal():
        legal = [a for a in st.legal_actions() if a != pass_action]
        st.apply(int(legal[rng.integers(len(legal))]))
    return game, st


def _without_to_move(text):
    return [line.split("     BLACK (X) to move")[0].split("     WHITE (O) to move")[0]
            for line in text.split("\n")]


def test_hoshi_points_of_a_9x9_board():
    points = {action_to_vertex(r * 9 + c, 9) for r in range(9) for c in range(9) if is_hoshi(9, r, c)}
    assert points == {"C3", "G3", "C7", "G7", "E5"}


def test_captures_count_the_stones_each_side_took():
    game = make_game(GameConfig(board_size=5))
    st = game.new_state()
    for v in ("B1", "A1", "A2"):  # White's A1 stone is taken by Black's A2
        st.apply(vertex_to_action(v, 5))
    assert captures(game, st) == (1, 0)


def test_board_names_the_side_to_move_and_has_no_empty_line():
    game, st = _partial_random_game(9, 0, 5)
    text = draw_board(game, st)
    assert text.startswith("\n   A B C D E F G H J\n 9 ")
    assert "WHITE (O) to move" in text  # five moves played
    assert "" not in text.split("\n")[1:]


@needs_gnugo
@pytest.mark.parametrize("size, moves", [(5, 20), (7, 40), (9, 70), (13, 150), (19, 330)])
def test_drawing_matches_gnugo_showboard(size, moves):
    game, st = _partial_random_game(size, size, moves)
    colours = "bw"
    script = [f"boardsize {size}", "clear_board"]
    script += [f"play {colours[i % 2]} {action_to_vertex(a, size)}" for i, a in enumerate(st.history())]
    out = subprocess.run([GNUGO, "--mode", "gtp"], input="\n".join(script + ["showboard", "quit"]) + "\n",
                         capture_output=True, text=True, timeout=60).stdout
    replies = out.split("\n\n")
    assert all(r.startswith("=") for r in replies[:len(script)]), out[:300]
    theirs = replies[len(script)]
    assert theirs.startswith("= \n")
    assert sum(captures(game, st)) > 0 or size == 5  # the game took stones: their count is checked
    assert _without_to_move(draw_board(game, st)) == theirs[2:].split("\n")
