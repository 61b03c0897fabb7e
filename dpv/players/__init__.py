from dpv.players.base import MoveInfo, Player

__all__ = ["MoveInfo", "Player"]
