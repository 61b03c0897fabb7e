"""Dead stones by eye-keeping random playouts: a known dead stone, a living group, and a
position from GNU Go self-play judged as GNU Go judges it."""
import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.play.gtp_dead import Playouts, judge, point_owners

GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=400)
# GNU Go 3.8 self-play, level 10, seed 3, to two passes; GNU Go: these five stones are dead, W+8.5
GNUGO_SEED3 = ("F6 C4 F3 D7 F7 D3 D6 C7 C6 B6 B5 B7 C5 E8 B4 G8 H6 H7 G7 H8 F8 J6 H5 F9 J5 E7 "
               "E2 E6 C2 F5 E4 G4 G3 H4 H3 J4 J3 F4 E5 G6 A6 A7 A5 PASS PASS")


def _judge(moves, size=9, komi=7.5, seed=0):
    game = make_game(GameConfig(board_size=size, komi=komi, max_game_length=4 * size * size))
    history = [vertex_to_action(m, size) for m in moves.split()]
    state = game.state_from_actions(history)
    black, white = game.stones(state.spiel_state)
    own = Playouts(game, np.random.default_rng(seed)).ownership(history)
    return judge(black, white, komi, own)


def test_point_owners_follow_area_scoring():
    black = np.zeros((3, 3), bool)
    white = np.zeros((3, 3), bool)
    black[:, 0] = True
    white[:, 2] = True
    owners = point_owners(black, white)
    assert owners[:, 0].tolist() == [1, 1, 1] and owners[:, 2].tolist() == [-1, -1, -1]
    assert owners[:, 1].tolist() == [0, 0, 0]  # touches both: neutral
    black[:, 1] = True
    white[:, 1] = False
    assert point_owners(black, white)[1, 1] == 1


def test_a_lone_stone_in_the_opponents_corner_is_dead_and_the_wall_lives():
    # 5x5: Black's wall on column C, White's on D with three eyes on E; White's A1 stone
    # sits alone in Black's area
    j = _judge("C1 D1 C2 D2 C3 D3 C4 D4 C5 D5 B4 E2 B2 E4 A4 A1 pass pass", size=5, komi=0.5)
    assert [action_to_vertex(a, 5) for a in j.dead_actions()] == ["A1"]
    assert j.score.result == "B+4.5"  # Black's 15 points (A1 taken off) against 10, komi 0.5


def test_gnugo_selfplay_position_gets_gnugos_dead_stones_and_score():
    j = _judge(GNUGO_SEED3)
    assert sorted(action_to_vertex(a, 9) for a in j.dead_actions()) == ["C4", "D3", "H5", "H6", "J5"]
    assert j.score.result == "W+8.5"
