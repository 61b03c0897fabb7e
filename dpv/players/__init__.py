from dpv.players.base import MoveInfo, Player
from dpv.players.random_player import RandomPlayer
from dpv.players.spec import make_player, parse_spec

__all__ = ["MoveInfo", "Player", "RandomPlayer", "make_player", "parse_spec"]
