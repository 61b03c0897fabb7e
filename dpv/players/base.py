"""The player protocols: the match engine, the arena, the GTP engine and the experiments talk
to every agent through them.

`Player` plays one game at a time (random, OpenSpiel MCTS, a GTP engine, a network).
`BatchPlayer` plays many games at once, so one network call serves the searches of all of
them (gating a candidate network against the best one). The exceptions a player raises live
here too, so players and the engines that drive them need not import each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import numpy.typing as npt

from dpv.errors import DPVError
from dpv.games.base import GameState


class Resign(Exception):
    """Raised by `select_move` when a player resigns."""


class PlayerFailure(DPVError):
    """A player could not take part in the game (engine died, timed out, broke protocol)."""


@dataclass
class MoveInfo:
    """What a player spent on its last move and what its search found (the arena averages
    the spend; the GTP engine reads the value to resign and, for analysis, the visits)."""

    seconds: float = 0.0
    flops: float = 0.0
    simulations: int = 0
    exit_histogram: list[int] = field(default_factory=list)  # evaluations stopped at each exit
    budget_flops: float | None = None  # the FLOPs budget of the search, None when unbudgeted
    root_value: float | None = None  # the mover's value of the position searched, in [-1, 1]
    visits: npt.NDArray[np.float64] | None = None  # root visit count per action
    principal_variation: list[int] = field(default_factory=list)  # the move chosen first
    # the mover's expected final margin in points from a score head (None without one)
    predicted_score: float | None = None


@runtime_checkable
class Player(Protocol):
    """One agent in one game at a time. Implementations subclass this protocol to take the
    defaults of its optional members (`final_score`, `close`)."""

    name: str
    last_move: MoveInfo  # set by every select_move

    def reset(self) -> None:
        """Start a new game (clear trees, tell an engine clear_board)."""
        ...

    def select_move(self, state: GameState) -> int:
        """Choose an action for the player to move in `state` (state is not modified);
        may raise `Resign` or `PlayerFailure`."""
        ...

    def notify_move(self, state: GameState, action: int) -> None:
        """`action` was played in `state` (before it was applied), by either side."""
        ...

    def final_score(self) -> str | None:
        """The player's own result of the finished game ('B+3.5'), compared with ours by the
        match engine; None from players that do not score (only engines do)."""
        return None

    def close(self) -> None:
        """Release resources (engine processes)."""
        return None


@runtime_checkable
class BatchPlayer(Protocol):
    """An agent that plays many games at once, numbered 0..n-1 after `new_games(n)`."""

    name: str

    def new_games(self, n: int) -> None:
        """Forget every game; games 0..n-1 start from their initial positions."""
        ...

    def select_moves(self, games: Sequence[int],
                     states: Sequence[GameState]) -> list[tuple[int, MoveInfo]]:
        """(action, what it cost) for the player to move in each `states[i]`, the position of
        game `games[i]`; all searched together."""
        ...

    def notify_game_move(self, game: int, state: GameState, action: int) -> None:
        """`action` was played in `state` of game `game` (before it was applied), by either side."""
        ...

    def close(self) -> None:
        """Release resources."""
        return None
