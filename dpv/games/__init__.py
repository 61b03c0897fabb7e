from dpv.games.base import Game, GameState
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.games.spiel import SpielGame, SpielState, make_game

__all__ = ["Game", "GameState", "SpielGame", "SpielState", "make_game",
           "action_to_vertex", "vertex_to_action"]
