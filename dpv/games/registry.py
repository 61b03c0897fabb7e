"""Which games the adapter builds and which options each takes, as plain data.

Config validation and checkpoint checks ask here ("does this game take a board size, which
ones?") instead of testing game names; the adapter (`dpv.games.spiel`) builds the games.
Imports nothing: `dpv.config` reads it without loading OpenSpiel.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GameInfo:
    name: str  # the config's game.name
    title: str  # for messages: "Go", "tic-tac-toe"
    board_sizes: tuple[int, ...] | None  # sizes game.board_size may take; None: the board is fixed
    uses_history: bool  # game.history sets how many past positions the observation holds
    handicap_sizes: tuple[int, ...] = ()  # boards where OpenSpiel places fixed handicap stones


GO_SIZES = (5, 7, 9, 13, 19)

GAMES: dict[str, GameInfo] = {info.name: info for info in (
    GameInfo("go", "Go", GO_SIZES, uses_history=True, handicap_sizes=(19,)),
    GameInfo("tic_tac_toe", "tic-tac-toe", None, uses_history=False),
    GameInfo("connect_four", "connect four", None, uses_history=False),
)}


def game_info(name: str) -> GameInfo | None:
    """The game `name` names, or None when the adapter does not know it."""
    return GAMES.get(name)


def board_sizes(name: str) -> tuple[int, ...] | None:
    """Board sizes game `name` supports; None for an unknown game or a fixed board."""
    info = GAMES.get(name)
    return None if info is None else info.board_sizes
