import pytest

from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.players import Player, RandomPlayer, make_player, parse_spec

GO5 = GameConfig(name="go", board_size=5)


def test_parse_spec_kinds_and_options():
    assert parse_spec("random") == ("random", {})
    assert parse_spec("mcts:sims=1000,uct_c=2") == ("mcts", {"sims": 1000, "uct_c": 2.0})
    kind, opts = parse_spec("net:ckpt/best.pt,mode=dynamic,n_ref=100,tau0=0.6,alpha=0.3")
    assert kind == "net" and opts == {"path": "ckpt/best.pt", "mode": "dynamic", "n_ref": 100,
                                      "tau0": 0.6, "alpha": 0.3}
    assert parse_spec('gtp:"gnugo --mode gtp --level 1",name=gnugo') == (
        "gtp", {"command": "gnugo --mode gtp --level 1", "name": "gnugo"})
    assert parse_spec("gtp:gnugo --mode gtp") == ("gtp", {"command": "gnugo --mode gtp"})


@pytest.mark.parametrize("spec, named", [
    ("alphago", "unknown kind 'alphago'"),
    ("mcts:simz=10", "unknown key 'simz'"),
    ("net:a.pt,depth=3", "unknown key 'depth'"),
    ("net:a.pt,n_ref=0", "n_ref must be > 0"),
    ("net:a.pt,n_ref=-5", "n_ref must be > 0"),
    ("net:a.pt,tau0=1.5", "tau0=1.5 is outside [0, 1]"),
    ("net:a.pt,tau0=-0.1", "tau0=-0.1 is outside [0, 1]"),
    ("net:a.pt,mode=fast", "unknown mode 'fast'"),
    ("net:mode=dynamic", "needs a checkpoint path"),
    ("mcts:sims=lots", "sims='lots' is not a valid int"),
    ('gtp:"gnugo --mode gtp', "unterminated quote"),
])
def test_bad_spec_gives_one_line_naming_it(spec, named):
    with pytest.raises(DPVError) as err:
        make_player(spec, GO5)
    msg = str(err.value)
    assert named in msg and "\n" not in msg


def test_random_player_plays_legal_moves_to_the_end():
    game = make_game(GO5)
    player = make_player("random", GO5, seed=3)
    assert isinstance(player, RandomPlayer) and isinstance(player, Player)
    state = game.new_state()
    while not state.is_terminal():
        a = player.select_move(state)
        assert a in state.legal_actions()
        player.notify_move(state, a)
        state.apply(a)
    assert player.last_move.seconds >= 0


def test_random_players_with_same_seed_agree():
    game = make_game(GO5)
    a, b = make_player("random", GO5, seed=7), make_player("random", GO5, seed=7)
    state = game.new_state()
    assert [a.select_move(state) for _ in range(5)] == [b.select_move(state) for _ in range(5)]


def test_spiel_mcts_player_plays_legal_moves():
    cfg = GameConfig(name="tic_tac_toe")
    game = make_game(cfg)
    players = [make_player("mcts:sims=50", cfg, seed=1), make_player("random", cfg, seed=2)]
    state = game.new_state()
    while not state.is_terminal():
        p = players[state.current_player()]
        a = p.select_move(state)
        assert a in state.legal_actions()
        for q in players:
            q.notify_move(state, a)
        state.apply(a)
    assert players[0].last_move.simulations == 50


def test_spiel_mcts_takes_the_winning_move_in_tic_tac_toe():
    cfg = GameConfig(name="tic_tac_toe")
    # X: 0, 1 ; O: 3, 4 ; X to move wins at 2
    state = make_game(cfg).state_from_actions([0, 3, 1, 4])
    assert make_player("mcts:sims=500", cfg, seed=0).select_move(state) == 2


@pytest.mark.gnugo
@pytest.mark.skipif(not __import__("shutil").which("gnugo") and
                    not __import__("os").path.exists("/usr/games/gnugo"), reason="no gnugo")
def test_gtp_spec_builds_the_gtp_player_lazily():
    player = make_player('gtp:"/usr/games/gnugo --mode gtp --level 1",name=gnugo1', GO5)
    try:
        assert type(player).__name__ == "GTPPlayer" and player.name == "gnugo1"
    finally:
        player.close()
