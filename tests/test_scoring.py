"""Area scoring: hand-built boards, and agreement with OpenSpiel's Go returns."""
import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.games.scoring import BLACK, WHITE, area_score, final_result, parse_result
from tests.go_helpers import play_random_go


def _board(rows: list[str]):
    """rows top to bottom, 'X' black, 'O' white, '.' empty -> (black, white) with row 0 = rank 1."""
    grid = np.array([list(r) for r in reversed(rows)])
    return (grid == "X").astype(np.int8), (grid == "O").astype(np.int8)


def test_territory_counts_only_regions_bordered_by_one_colour():
    b, w = _board([".X.O.",
                   ".X.O.",
                   "XX.OO",
                   ".....",
                   "....."])
    s = area_score(b, w, komi=0.5)
    # Black: 4 stones + 2 points at the left; White: 4 stones + 2 points at the right;
    # the middle column and the two bottom rows touch both colours
    assert (s.black, s.white) == (6, 6)
    assert s.margin == -0.5 and s.winner == WHITE and s.result == "W+0.5"


def test_empty_board_is_neutral_and_integer_komi_can_draw():
    z = np.zeros((5, 5), np.int8)
    assert area_score(z, z, komi=0).winner is None
    b, w = _board(["..X..", "..X..", "..X..", "..X..", "..X.."])
    assert area_score(b, w, komi=7.5).black == 25


def test_score_agrees_with_openspiel_returns_on_random_games():
    rng = np.random.default_rng(3)
    ends = set()
    for size, komi in ((5, 0.5), (7, 2.0), (9, 7.5)):
        game = make_game(GameConfig(board_size=size, komi=komi, max_game_length=3 * size * size))
        for _ in range(15):
            st = play_random_go(game, rng)
            winner, _, reason = final_result(st)
            ends.add(reason)
            r = st.returns()
            expected = BLACK if r[0] > r[1] else WHITE if r[1] > r[0] else None
            assert winner == expected, (size, st.history())
    assert ends == {"two_passes", "max_length", "superko"}  # every way a game ends was checked


@pytest.mark.parametrize("text,expected", [
    ("W+0.5", (WHITE, 0.5)), ("B+12", (BLACK, 12.0)), ("B+R", (BLACK, None)),
    ("w+Resign", (WHITE, None)), ("0", (None, 0.0)), (" B+3.5 ", (BLACK, 3.5)),
])
def test_parse_result(text, expected):
    assert parse_result(text) == expected


def test_parse_result_rejects_noise():
    with pytest.raises(ValueError, match="not a game result"):
        parse_result("cannot score")
