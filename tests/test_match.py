"""play_game / play_match with real players (random, and tiny local ones for edge cases)."""
import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.play.match import play_game, play_match, random_opening
from dpv.play.records import GameRecord
from dpv.players.base import MoveInfo, Player, PlayerFailure, Resign
from dpv.players.random_player import RandomPlayer

GO5 = GameConfig(board_size=5, komi=0.5, max_game_length=100)
GO5_PASS = 25


class Scripted(Player):
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
        return GO5_PASS

    def notify_move(self, state, action):
        self.seen.append(action)


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
    rec = play_game(Scripted("b", [12]), Scripted("w", [25]), GO5)
    again = GameRecord.from_dict(rec.to_dict())
    assert again == rec


# ---------------------------------------------------------------------- batched network play
TTT = GameConfig(name="tic_tac_toe")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny nets: torch's thread pool only spins against the other jobs on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ttt_net_player(net_seed: int, name: str):
    import torch

    from dpv.config import MCTSConfig, NetConfig
    from dpv.nets import build_policy_value_net
    from dpv.players.net_player import NetPlayer

    torch.manual_seed(net_seed)
    net = build_policy_value_net(NetConfig(blocks=1, channels=8, exits=(1,), value_hidden=8),
                                 make_game(TTT))
    cfg = MCTSConfig(simulations=12, leaves_per_call=2, temperature_moves=0)
    return NetPlayer(net.eval(), TTT, cfg, name=name)


def _games(result):
    return [(r.index, r.a_colour, r.black, r.moves, r.opening_moves, r.winner, r.result, r.reason)
            for r in result.records]


def test_batched_network_match_plays_the_sequential_games():
    """Noise-free greedy searches are deterministic: all games at once (in batches of 4 and 2)
    are move for move the games played one after another."""
    from dpv.play.match import play_batched_match

    seq = play_match(ttt_net_player(0, "a"), ttt_net_player(1, "b"), TTT, 6, opening_moves=1, seed=3)
    bat = play_batched_match(ttt_net_player(0, "a"), ttt_net_player(1, "b"), TTT, 6,
                             concurrent=4, opening_moves=1, seed=3)
    assert _games(bat) == _games(seq)
    assert [r.index for r in bat.records] == list(range(6)) and bat.games == 6
    assert len({tuple(r.moves) for r in bat.records}) > 1  # the openings make games differ
    assert (bat.wins, bat.losses, bat.draws) == (seq.wins, seq.losses, seq.draws)
    assert all(r.totals[0].simulations > 0 and r.totals[0].moves > 0 for r in bat.records)


def test_a_match_split_in_parts_plays_the_whole_match():
    from dpv.play.match import play_batched_match
    from dpv.play.records import MatchResult

    whole = play_match(ttt_net_player(0, "a"), ttt_net_player(1, "b"), TTT, 6, opening_moves=1, seed=5)
    parts = [play_batched_match(ttt_net_player(0, "a"), ttt_net_player(1, "b"), TTT, n,
                                concurrent=3, opening_moves=1, seed=5, first_game=first)
             for first, n in ((4, 2), (0, 4))]
    joined = MatchResult.combine(parts)
    assert _games(joined) == _games(whole)
    assert joined.to_dict() == {"a": "a", "b": "b", "wins": whole.wins, "losses": whole.losses,
                                "draws": whole.draws, "games": 6, "score": whole.score}


def test_zero_games_score_one_half_and_promote_nobody():
    from dpv.play.match import play_batched_match
    from dpv.play.records import MatchResult
    from selfplay.gating import promote

    empty = play_batched_match(ttt_net_player(0, "a"), ttt_net_player(1, "b"), TTT, 0, concurrent=2)
    assert empty.games == 0 and empty.score == 0.5
    assert MatchResult.combine([]).score == 0.5
    assert not promote(empty, 0.0)


def test_batched_match_needs_two_player_objects():
    from dpv.play.match import play_batched_match

    p = ttt_net_player(0, "a")
    with pytest.raises(ValueError, match="two player objects"):
        play_batched_match(p, p, TTT, 2, concurrent=2)
