"""SGF FF[4]: write, read back, replay into the game adapter; GNU Go loads our files."""
import os
import subprocess

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.games.scoring import final_result, format_result
from dpv.play.sgf import SGFError, action_to_sgf, parse_sgf, read_sgf, replay, sgf_to_action, write_sgf
from tests.go_helpers import play_random_go

GNUGO = "/usr/games/gnugo"
needs_gnugo = pytest.mark.skipif(not os.path.exists(GNUGO),
                                 reason="GNU Go not installed (apt-get install gnugo; CI installs it)")


def _random_game(size, seed, komi=7.5):
    game = make_game(GameConfig(board_size=size, komi=komi, max_game_length=4 * size * size))
    return play_random_go(game, np.random.default_rng(seed))


def test_points_follow_sgf_orientation():
    # SGF 'aa' is the top-left corner: GTP A9 on 9x9, action 72 (row 8, col 0)
    assert action_to_sgf(72, 9) == "aa" and action_to_sgf(0, 9) == "ai"
    assert action_to_sgf(81, 9) == "" and sgf_to_action("tt", 9) == 81 and sgf_to_action("", 9) == 81
    assert all(sgf_to_action(action_to_sgf(a, 13), 13) == a for a in range(170))
    with pytest.raises(SGFError, match="off a 9x9 board"):
        sgf_to_action("jj", 9)


@pytest.mark.parametrize("size", [5, 9, 13])
def test_write_read_replay_round_trip(size):
    st = _random_game(size, seed=size)
    winner, margin, reason = final_result(st)
    text = write_sgf(st.history(), size, 7.5, "alpha [a]", "beta\\b",
                     result=format_result(winner, None if margin is None else abs(margin)),
                     comment="line one\nline ] two", move_comments={1: "opening"})
    g = parse_sgf(text)
    assert (g.size, g.komi) == (size, 7.5)
    assert g.properties["PB"] == "alpha [a]" and g.properties["PW"] == "beta\\b"
    assert g.properties["C"] == "line one\nline ] two" and g.comments == {1: "opening"}
    assert [a for _, a in g.moves] == st.history()
    assert [c for c, _ in g.moves] == [i % 2 for i in range(len(st.history()))]
    again = replay(g)
    assert again.history() == st.history() and again.is_terminal() == st.is_terminal()


def test_reader_follows_the_main_line_and_inserts_passes_for_repeated_colours():
    g = parse_sgf("(;GM[1]FF[4]SZ[5]KM[0.5];B[cc](;W[bb];B[dd])(;W[aa]))")
    assert [a for _, a in g.moves] == [12, 16, 8]  # cc=C3, bb=B4, dd=D2
    st = replay(parse_sgf("(;SZ[5];B[cc];B[dd])"))  # handicap-style: White passed between
    assert st.history() == [12, 25, 8]


@pytest.mark.parametrize("text,message", [
    ("hello", "not an SGF file"),
    ("(;GM[2]SZ[8])", "not Go"),
    ("(;SZ[5]AW[aa][bb])", "AW \\(white stones\\) cannot be replayed"),
    ("(;SZ[5];B[cc];AB[aa])", "AB \\(black stones\\) after the start"),
    ("(;SZ[5];B[cc];W[cc])", "move 2"),
    ("(;SZ[5]C[open", "unterminated"),
    ("(;SZ[5]KM[lots])", "komi"),
])
def test_bad_records_fail_with_a_clear_message(text, message):
    with pytest.raises(SGFError, match=message):
        replay(parse_sgf(text))


def test_replay_refuses_a_board_size_mismatch_and_read_names_the_file(tmp_path):
    with pytest.raises(SGFError, match="board size mismatch"):
        replay(parse_sgf("(;SZ[7];B[cc])"), GameConfig(board_size=9))
    with pytest.raises(SGFError, match="not found"):
        read_sgf(tmp_path / "missing.sgf")


@needs_gnugo
@pytest.mark.parametrize("size", [5, 9, 13])
def test_gnugo_loads_our_files_and_agrees_on_the_position(tmp_path, size):
    st = _random_game(size, seed=100 + size)
    path = tmp_path / f"g{size}.sgf"
    path.write_text(write_sgf(st.history(), size, 7.5, result="?"))
    out = subprocess.run([GNUGO, "--mode", "gtp", "--chinese-rules"], capture_output=True, text=True,
                         input=f"loadsgf {path}\nlist_stones black\nlist_stones white\nquit\n", timeout=60)
    answers = out.stdout.split("\n\n")
    assert answers[0].startswith("= "), answers[0]  # '= black' or '= white': the side to move
    black, white = make_game(GameConfig(board_size=size)).stones(st.spiel_state)
    from dpv.games.coords import action_to_vertex
    ours_b = {action_to_vertex(int(i), size) for i in black.reshape(-1).nonzero()[0]}
    ours_w = {action_to_vertex(int(i), size) for i in white.reshape(-1).nonzero()[0]}
    assert set(answers[1][2:].split()) == ours_b
    assert set(answers[2][2:].split()) == ours_w
