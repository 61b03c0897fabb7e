"""play_game / play_match with real players (random, and tiny local ones for edge cases)."""
import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.play.match import PlayerFailure, Resign, play_game, play_match, random_opening
from dpv.players.base import MoveInfo
from dpv.players.random_player import RandomPlayer

GO5 = GameConfig(board_size=5, komi=0.5, max_game_length=100)


class Scripted:
    """Plays a fixed list of actions, then does what `then` says (resign, fail, illegal)."""

    def __init__(self, name, actions, then="pass"):
        self.name, self.actions, self.then = name, list(actions), then
        self.seen: list[int] = []
        self.last_move = MoveInfo()

    def reset(self):
        self.seen = []

    def select_move(self, state):
        self.last_move = MoveInfo(seconds=0.01, flops=5.0, simulations=2)
        if self.actions:
            return self.actions.pop(0)
        if self.then == "resign":
            raise Resign()
        if self.then == "fail":
            raise PlayerFailure("engine exited with code 1")
        if self.then == "illegal":
            return state.history()[-1] if state.history() else 0
        return state.game.num_actions - 1

    def notify_move(self, state, action):
        self.seen.append(action)

    def close(self):
        pass


def test_two_passes_end_the_game_and_area_scoring_decides():
    b = Scripted("b", [12])  # black takes the centre, then passes
    w = Scripted("w", [25])  # white passes at once
    rec = play_game(b, w, GO5)
    assert rec.moves == [12, 25, 25]
    assert rec.reason == "score" and rec.winner == 0 and rec.result == "B+24.5"
    assert b.seen == w.seen == [12, 25, 25]  # both players hear every move
    assert rec.totals[0].moves == 2 and rec.totals[0].flops == 10.0 and rec.totals[1].simulations == 2


def test_resignation_and_forfeits_name_the_loser():
    rec = play_game(Scripted("b", [], "resign"), Scripted("w", []), GO5)
    assert (rec.winner, rec.reason, rec.result) == (1, "resign", "W+R")
    rec = play_game(Scripted("b", [12]), Scripted("w", [], "fail"), GO5)
    assert (rec.winner, rec.reason, rec.result) == (0, "forfeit", "B+F")
    assert "engine exited" in rec.detail and rec.detail.startswith("w:")
    rec = play_game(Scripted("b", [12]), Scripted("w", [], "illegal"), GO5)
    assert rec.reason == "forfeit" and rec.winner == 0 and "illegal move (C3)" in rec.detail


def test_opening_moves_are_recorded_and_shared_by_a_pair():
    game = make_game(GO5)
    op = random_opening(game, 4, np.random.default_rng(1))
    assert len(op) == 4 and 25 not in op
    a, b = RandomPlayer(seed=1, name="a"), RandomPlayer(seed=2, name="b")
    res = play_match(a, b, GO5, games=4, opening_moves=3, seed=7)
    recs = res.records
    assert [r.a_colour for r in recs] == [0, 1, 0, 1]
    assert recs[0].moves[:3] == recs[1].moves[:3] and recs[0].opening_moves == 3
    assert recs[0].moves[:3] != recs[2].moves[:3]
    assert recs[0].black == "a" and recs[1].black == "b"
    assert res.wins + res.losses + res.draws == 4
    w, l, d = res.by_colour()["black"]
    assert w + l + d == 2


def test_random_players_finish_tic_tac_toe_and_connect_four():
    for name in ("tic_tac_toe", "connect_four"):
        res = play_match(RandomPlayer(seed=0, name="a"), RandomPlayer(seed=1, name="b"),
                         GameConfig(name=name), games=6, opening_moves=1)
        assert res.games == 6 and all(r.reason == "score" for r in res.records)
        assert res.score == pytest.approx((res.wins + 0.5 * res.draws) / 6)


def test_record_round_trips_through_dict():
    from dpv.play.match import GameRecord
    rec = play_game(Scripted("b", [12]), Scripted("w", [25]), GO5)
    again = GameRecord.from_dict(rec.to_dict())
    assert again == rec
