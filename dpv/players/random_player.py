"""The uniform random player: the floor every other player must beat."""
from __future__ import annotations

import time

import numpy as np

from dpv.games.base import GameState
from dpv.players.base import MoveInfo, Player


class RandomPlayer(Player):
    """Picks uniformly among the legal actions, from its own seeded generator."""

    def __init__(self, seed: int = 0, name: str = "random"):
        self.name = name
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.last_move = MoveInfo()

    def reset(self) -> None:
        pass  # stateless between moves; the generator keeps running so games differ

    def select_move(self, state: GameState) -> int:
        t0 = time.perf_counter()
        legal = state.legal_actions()
        action = int(legal[self._rng.integers(len(legal))])
        self.last_move = MoveInfo(seconds=time.perf_counter() - t0)
        return action

    def notify_move(self, state: GameState, action: int) -> None:
        pass
