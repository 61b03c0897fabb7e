"""The game protocol that search, training and players talk to; nothing here knows Go.

A `Game` is immutable configuration (sizes, symmetries); a `GameState` is one position that
can be cloned and advanced. `current_player()` is the player who would move next, also at a
terminal state, so `terminal_value()` (the result from that player's view) is what search
backs up without knowing the game.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class GameState(Protocol):
    def current_player(self) -> int: ...
    def legal_actions(self) -> list[int]: ...
    def legal_mask(self) -> np.ndarray: ...  # bool (num_actions,)
    def apply(self, action: int) -> None: ...
    def clone(self) -> "GameState": ...
    def is_terminal(self) -> bool: ...
    def returns(self) -> Sequence[float]: ...  # per player, at a terminal state
    def terminal_value(self) -> float: ...  # return of current_player() at a terminal state
    def observation(self) -> np.ndarray: ...  # float32 (C, H, W), from the player to move
    def history(self) -> list[int]: ...  # actions applied since the initial state


@runtime_checkable
class Game(Protocol):
    name: str
    num_actions: int
    observation_shape: tuple[int, int, int]
    num_symmetries: int

    def new_state(self) -> GameState: ...
    def transform_planes(self, planes: np.ndarray, sym: int) -> np.ndarray: ...
    def transform_policy(self, policy: np.ndarray, sym: int) -> np.ndarray: ...
    def action_to_string(self, action: int) -> str: ...
