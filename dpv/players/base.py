"""The player protocol: arena, GTP engine and experiments talk to every agent through it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dpv.games.base import GameState


@dataclass
class MoveInfo:
    """What a player spent on its last move (arena reports per-player averages)."""

    seconds: float = 0.0
    flops: float = 0.0
    simulations: int = 0
    exit_histogram: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Player(Protocol):
    name: str

    def reset(self) -> None:
        """Start a new game (clear trees, tell an engine clear_board)."""

    def select_move(self, state: GameState) -> int:
        """Choose an action for the player to move in `state` (state is not modified)."""

    def notify_move(self, state: GameState, action: int) -> None:
        """`action` was played in `state` (before it was applied), by either side."""

    def close(self) -> None:
        """Release resources (engine processes)."""
