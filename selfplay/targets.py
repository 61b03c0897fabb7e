"""Training targets of a finished self-play game, each from the view of the player who moved.

z (value): +1 on the winner's moves, -1 on the loser's, 0 throughout a draw. Where the game
gives them (Go), the auxiliary targets of KataGo: the final owner of every point under the
game's own scoring (`Game.final_ownership`, +1 = the mover) and the final margin
(`Game.result(...).margin`, Black's, sign flipped on White's moves). A resigned game has a
winner but no final position: its ownership and score are unknown (None), not guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dpv.games.base import FIRST, Game, GameState


@dataclass
class GameTargets:
    winner: int | None  # None: a draw
    values: np.ndarray  # (T,) float32
    ownership: np.ndarray | None  # (T, H, W) int8, None when unknown
    score: np.ndarray | None  # (T,) float32 points, None when unknown


def mover_signs(players: Sequence[int]) -> np.ndarray:
    """+1 on the first player's (Black's) moves, -1 on the second's."""
    return np.array([1 if p == FIRST else -1 for p in players], dtype=np.int8)


def value_targets(winner: int | None, players: Sequence[int]) -> np.ndarray:
    return np.array([0.0 if winner is None else 1.0 if p == winner else -1.0 for p in players],
                    dtype=np.float32)


def finished_game_targets(game: Game, final: GameState, players: Sequence[int]) -> GameTargets:
    """Targets of a game played to its end; `players[t]` moved at position t."""
    outcome = game.result(final)
    signs = mover_signs(players)
    owner = game.final_ownership(final)
    ownership = None if owner is None else (signs[:, None, None] * owner[None]).astype(np.int8)
    score = None if outcome.margin is None else (signs * np.float32(outcome.margin)).astype(np.float32)
    return GameTargets(outcome.winner, value_targets(outcome.winner, players), ownership, score)


def resigned_game_targets(resigner: int, players: Sequence[int]) -> GameTargets:
    """Targets of a game that `resigner` gave up: the other player won; no final position."""
    return GameTargets(1 - resigner, value_targets(1 - resigner, players), None, None)
