import subprocess
import sys

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import GameOutcome, action_to_vertex, make_game, vertex_to_action
from dpv.games.scoring import BLACK, WHITE, format_result


def go(size=5, **kw):
    return make_game(GameConfig(name="go", board_size=size, **kw))


def play(game, vertices):
    s = game.new_state()
    for v in vertices:
        s.apply(vertex_to_action(v, game.height))
    return s


def board(game, black=(), white=()):
    b = np.zeros((game.height, game.width), np.float32)
    w = np.zeros_like(b)
    for v in black:
        r, c = divmod(vertex_to_action(v, game.height), game.width)
        b[r, c] = 1
    for v in white:
        r, c = divmod(vertex_to_action(v, game.height), game.width)
        w[r, c] = 1
    return b, w


def test_go_observation_has_17_planes_and_colour():
    g = go(9)
    s = g.new_state()
    assert s.observation().shape == (17, 9, 9)
    assert s.observation()[16].min() == 1.0  # black to move
    s.apply(0)
    assert s.observation()[16].max() == 0.0  # white to move


def test_history_planes_after_capture_and_pass():
    g = go(5)
    # Black captures the white stone on A1: B B1, W A1, B pass, W C3, B A2 (captures A1).
    s = play(g, ["B1", "A1", "pass", "C3", "A2"])
    obs = s.observation()  # white to move: own = white, opponent = black
    b_now, w_now = board(g, black=["B1", "A2"], white=["C3"])
    np.testing.assert_array_equal(obs[0], w_now)
    np.testing.assert_array_equal(obs[1], b_now)
    # one move ago (before A2): A1 still white
    b1, w1 = board(g, black=["B1"], white=["A1", "C3"])
    np.testing.assert_array_equal(obs[2], w1)
    np.testing.assert_array_equal(obs[3], b1)
    # two moves ago (before C3) and three (the pass repeats the position)
    b2, w2 = board(g, black=["B1"], white=["A1"])
    np.testing.assert_array_equal(obs[4], w2)
    np.testing.assert_array_equal(obs[5], b2)
    np.testing.assert_array_equal(obs[6], w2)
    np.testing.assert_array_equal(obs[7], b2)
    # four moves ago: only B1
    np.testing.assert_array_equal(obs[9], board(g, black=["B1"])[0])
    np.testing.assert_array_equal(obs[8], 0)
    # before the game: empty planes
    assert obs[10:16].sum() == 0
    assert obs[16].max() == 0.0


def test_history_is_kept_per_clone():
    g = go(5)
    s = play(g, ["C3"])
    t = s.clone()
    t.apply(vertex_to_action("D4", 5))
    assert s.observation()[1].sum() == 1 and t.observation()[1].sum() == 1
    assert t.observation()[0].sum() == 1  # black (to move in t) sees its own C3
    assert len(s.history()) == 1 and len(t.history()) == 2


@pytest.mark.parametrize("sym", range(8))
def test_symmetry_roundtrip_on_planes_and_policy(sym):
    for g in (go(9), make_game(GameConfig(name="tic_tac_toe"))):
        rng = np.random.default_rng(sym)
        planes = rng.random(g.observation_shape).astype(np.float32)
        policy = rng.random(g.num_actions)
        from dpv.games.symmetry import inverse
        inv = g.symmetries.index(inverse(g.symmetries[sym]))
        np.testing.assert_array_equal(g.transform_planes(g.transform_planes(planes, sym), inv), planes)
        np.testing.assert_array_equal(g.transform_policy(g.transform_policy(policy, sym), inv), policy)


@pytest.mark.parametrize("sym", range(8))
def test_go_symmetry_of_planes_equals_planes_of_transformed_position(sym):
    g = go(7)
    rng = np.random.default_rng(100 + sym)
    s = g.new_state()
    t = g.new_state()
    for _ in range(30):
        a = int(rng.choice(s.legal_actions()))
        onehot = np.zeros(g.num_actions)
        onehot[a] = 1
        ta = int(np.argmax(g.transform_policy(onehot, sym)))
        assert (ta == a) if a == g.num_actions - 1 else True  # pass is fixed
        s.apply(a)
        t.apply(ta)
        if s.is_terminal():
            break
    np.testing.assert_array_equal(g.transform_planes(s.observation(), sym), t.observation())
    # the legal mask moves like a policy vector
    np.testing.assert_array_equal(g.transform_policy(s.legal_mask(), sym), t.legal_mask())


def test_connect_four_has_left_right_symmetry_only():
    g = make_game(GameConfig(name="connect_four"))
    assert g.num_symmetries == 2
    s = g.new_state()
    s.apply(0)
    t = g.new_state()
    t.apply(6)
    np.testing.assert_array_equal(g.transform_planes(s.observation(), 1), t.observation())
    np.testing.assert_array_equal(g.transform_policy(np.arange(7.0), 1), np.arange(7.0)[::-1])


def test_tic_tac_toe_planes_are_from_the_player_to_move():
    g = make_game(GameConfig(name="tic_tac_toe"))
    s = g.new_state()
    s.apply(4)  # X centre; O to move
    obs = s.observation()
    assert obs.shape == (3, 3, 3)
    assert obs[1, 1, 1] == 1 and obs[0].sum() == 0 and obs[2].max() == 0


def test_terminal_value_is_from_the_player_to_move():
    g = make_game(GameConfig(name="tic_tac_toe"))
    s = g.new_state()
    for a in [0, 3, 1, 4, 2]:  # X wins on the top row
        s.apply(a)
    assert s.is_terminal()
    assert s.current_player() == 1 and s.terminal_value() == -1.0


def test_go_max_game_length_is_explicit():
    assert go(9).max_game_length == 324
    assert go(9, max_game_length=500).max_game_length == 500


@pytest.mark.parametrize("size", [5, 9, 19])
def test_gtp_vertices_roundtrip_and_skip_i(size):
    for a in range(size * size + 1):
        assert vertex_to_action(action_to_vertex(a, size), size) == a
    assert "I" not in "".join(action_to_vertex(a, size)[0] for a in range(size * size))
    assert action_to_vertex(size * size, size) == "pass"


def test_gtp_vertex_examples():
    assert vertex_to_action("A1", 9) == 0
    assert vertex_to_action("J1", 9) == 8  # I is skipped
    assert vertex_to_action("a9", 9) == 72
    for bad in ("I1", "K1", "A10", "Z", "A0", ""):
        with pytest.raises(ValueError):
            vertex_to_action(bad, 9)


# --- Game.result / pass_action: the outcome every caller reads, Go or not

def test_pass_action_is_the_go_pass_and_none_without_one():
    assert go(5).pass_action == 25 and action_to_vertex(25, 5) == "pass"
    assert make_game(GameConfig(name="tic_tac_toe")).pass_action is None
    assert make_game(GameConfig(name="connect_four")).pass_action is None


def test_go_result_is_area_score_with_komi():
    g = go(5)  # komi 7.5
    s = play(g, ["pass", "pass"])
    assert g.result(s) == GameOutcome(WHITE, -7.5, "score") and g.result(s).text == "W+7.5"
    s = play(g, ["C3", "pass", "pass"])  # one black stone owns the whole board: 25 - 7.5
    assert g.result(s) == GameOutcome(BLACK, 17.5, "score") and g.result(s).text == "B+17.5"


def test_go_result_at_max_length_is_scored():
    g = go(5, max_game_length=3)
    s = play(g, ["C3", "A1", "E5"])
    assert s.is_terminal()
    out = g.result(s)  # 2 black stones own their share of the board: black 2 + 0, white 1
    assert out.reason == "max_length" and out.margin == 2 - 1 - 7.5 and out.winner == WHITE
    assert out.winner == int(np.argmax(s.returns()))


def test_tic_tac_toe_and_connect_four_results_come_from_returns():
    t = make_game(GameConfig(name="tic_tac_toe"))
    s = t.new_state()
    for a in [0, 3, 1, 4, 2]:  # X (first player) wins on the top row
        s.apply(a)
    assert t.result(s) == GameOutcome(BLACK, None, "score") and t.result(s).text == "B+"
    s = t.new_state()
    for a in [0, 1, 2, 4, 3, 5, 7, 6, 8]:  # X O X / X O O / O X X: full board, no line
        s.apply(a)
    assert s.is_terminal() and t.result(s) == GameOutcome(None, None, "score")
    assert t.result(s).text == "0"
    c = make_game(GameConfig(name="connect_four"))
    s = c.new_state()
    for a in [0, 1, 0, 1, 0, 1, 2, 1]:  # second player fills column 1 four high
        s.apply(a)
    assert s.is_terminal() and c.result(s).winner == WHITE


def test_result_of_an_unfinished_game_is_a_value_error():
    g = go(5)
    with pytest.raises(ValueError, match="not over"):
        g.result(g.new_state())


@pytest.mark.parametrize("winner,margin", [(BLACK, 3.5), (WHITE, -0.5), (BLACK, None),
                                           (WHITE, None), (None, None), (None, 0.0)])
def test_outcome_text_is_the_sgf_result(winner, margin):
    text = GameOutcome(winner, margin, "score").text
    assert text == format_result(winner, None if margin is None else abs(margin))


def test_importing_the_game_protocol_loads_no_openspiel():
    code = ("import sys, dpv.games.base, dpv.games; "
            "assert 'pyspiel' not in sys.modules and 'dpv.games.spiel' not in sys.modules; "
            "from dpv.games import make_game; assert 'pyspiel' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
