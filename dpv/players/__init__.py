from dpv.players.base import BatchPlayer, MoveInfo, Player, PlayerFailure, Resign
from dpv.players.random_player import RandomPlayer
from dpv.players.spec import make_player, parse_spec

__all__ = ["BatchPlayer", "MoveInfo", "Player", "PlayerFailure", "RandomPlayer", "Resign",
           "make_player", "parse_spec"]
