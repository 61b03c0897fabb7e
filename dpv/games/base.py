"""The game protocol that search, training and players talk to; nothing here knows Go.

A `Game` is immutable configuration (sizes, symmetries); a `GameState` is one position that
can be cloned and advanced. `current_player()` is the player who would move next, also at a
terminal state, so `terminal_value()` (the result from that player's view) is what search
backs up without knowing the game. `Game.result` says who won a finished game and by how
much, and `Game.final_ownership` who owns each point, so the match engine, the GTP engine
and self-play need no game-specific scoring.

This module imports no OpenSpiel: search and tests with a ten-line fake game import only it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import numpy.typing as npt

FIRST, SECOND = 0, 1  # player indices: Black and White in Go, X and O in tic-tac-toe


@dataclass(frozen=True)
class GameOutcome:
    """How a finished game ended, from the first player's side."""

    winner: int | None  # 0 = first player (Black), 1 = second, None = draw
    margin: float | None  # first player's points - second's - komi; None without a score
    reason: str  # 'score' (two passes / natural end), 'max_length', 'superko'

    @property
    def text(self) -> str:
        """SGF/GTP result text: 'B+3.5', 'W+0.5', 'B+' (no margin), '0' (draw)."""
        if self.winner is None:
            return "0"
        colour = "B" if self.winner == FIRST else "W"
        if self.margin is None:
            return f"{colour}+"
        return f"{colour}+{abs(self.margin):g}"


@runtime_checkable
class GameState(Protocol):
    """One position. The members with a body are optional capabilities: a state that
    subclasses this protocol takes their plain defaults, an adapter overrides them when it
    can do better (one-step child positions, playouts on the engine's own state)."""

    __slots__ = ()  # so an adapter's state keeps its own __slots__

    def current_player(self) -> int: ...
    def legal_actions(self) -> list[int]: ...
    def legal_mask(self) -> npt.NDArray[np.bool_]: ...  # (num_actions,)
    def apply(self, action: int) -> None: ...
    def clone(self) -> GameState: ...
    def is_terminal(self) -> bool: ...
    def returns(self) -> Sequence[float]: ...  # per player, at a terminal state
    def terminal_value(self) -> float: ...  # return of current_player() at a terminal state
    def observation(self) -> npt.NDArray[np.float32]: ...  # (C, H, W), from the player to move
    def history(self) -> list[int]: ...  # actions applied since the initial state

    def child(self, action: int) -> GameState:
        """The state after `action`, this one unchanged (what search does per new node)."""
        state = self.clone()
        state.apply(action)
        return state

    def is_legal(self, action: int) -> bool:
        return not self.is_terminal() and action in self.legal_actions()

    def move_number(self) -> int:
        """Moves played since the initial state."""
        return len(self.history())

    def playout(self, rng: np.random.Generator) -> Sequence[float]:
        """Returns per player at the end of uniformly random play from here (rollouts)."""
        state = self.clone()
        while not state.is_terminal():
            legal = state.legal_actions()
            state.apply(legal[int(rng.integers(len(legal)))])
        return state.returns()


@runtime_checkable
class Game(Protocol):
    name: str
    num_actions: int
    observation_shape: tuple[int, int, int]
    num_symmetries: int
    pass_action: int | None  # None where the game has no pass

    def new_state(self) -> GameState: ...
    def transform_planes(self, planes: npt.NDArray[Any], sym: int) -> npt.NDArray[Any]: ...
    def transform_policy(self, policy: npt.NDArray[Any], sym: int) -> npt.NDArray[Any]: ...
    def action_to_string(self, action: int) -> str: ...

    def result(self, state: GameState) -> GameOutcome:
        """Outcome of a finished game (area score with komi for Go, returns otherwise);
        ValueError if the game is not over."""
        ...

    def final_ownership(self, state: GameState) -> npt.NDArray[np.int8] | None:
        """Owner of every point of `state` (usually the last position of a game) under the
        game's scoring: an int8 (H, W) map in the layout of the observation planes, +1 the
        first player (Black), -1 the second, 0 neither; None for games without territory.
        An optional capability: self-play's ownership targets and the GTP engine read it."""
        return None
