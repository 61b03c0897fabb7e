"""The game package. Its face is light: importing `dpv.games` or `dpv.games.base` loads no
OpenSpiel; `make_game` and the OpenSpiel adapters load on first use (or import them from
`dpv.games.spiel`)."""
from __future__ import annotations

from typing import Any

from dpv.games.base import Game, GameOutcome, GameState
from dpv.games.coords import action_to_vertex, vertex_to_action

__all__ = ["Game", "GameOutcome", "GameState", "SpielGame", "SpielState", "make_game",
           "action_to_vertex", "vertex_to_action"]

_SPIEL_NAMES = ("SpielGame", "SpielState", "make_game")


def __getattr__(name: str) -> Any:
    if name in _SPIEL_NAMES:
        from dpv.games import spiel  # OpenSpiel only when someone builds a game
        return vars(spiel)[name]
    raise AttributeError(f"module 'dpv.games' has no attribute {name!r}")
