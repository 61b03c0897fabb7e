"""Resignation in self-play, with its false-positive check (AlphaGo Zero, AlphaZero).

A player resigns when its root value (the search's value of the position, its own view)
has stayed below the threshold for `consecutive` of its moves in a row. In a share of the
games resignation is off and the game is played out: those games tell how often resigning
would have been wrong (a false positive: the first player whom the rule would have made
resign did not lose). The threshold adapts to keep that rate under the target: after each
played-out game it becomes the highest threshold (up to `max_threshold`) whose rate over
the recent played-out games is at most the target, computed exactly from their values.
It rises above the threshold in force only where at least `min_support` of those games
would have resigned under the new one: on fewer, a rate of 5% cannot be told from 0 (one
wrong resignation in 20 is 5%), and the first 1-hour 9x9 run, adapting after each actor's
first 10 played-out games, jumped from -0.9 to the cap and measured 15% false positives
(docs/selfplay_results.md).

Each self-play worker keeps its own tracker (no shared state between actors); a resumed
run starts again from `threshold`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dpv.config import check


@dataclass(frozen=True)
class ResignConfig:
    enabled: bool = False
    threshold: float = -0.9  # the starting threshold on the mover's root value
    consecutive: int = 3  # own moves in a row below the threshold
    playout_share: float = 0.1  # games with resignation off, played out to measure it
    target_false_positives: float = 0.05  # the highest rate of wrong resignations kept
    adapt: bool = True
    max_threshold: float = -0.5  # the threshold never rises above this
    window: int = 200  # recent played-out games the rate is measured on
    min_games: int = 10  # played-out games before the threshold first adapts
    min_support: int = 20  # would-be resignations needed to raise the threshold (1 / 5%)

    def validate(self, where: str) -> None:
        check(-1.0 <= self.threshold <= 1.0, f"{where}.threshold", f"{self.threshold} is outside [-1, 1]")
        check(self.consecutive >= 1, f"{where}.consecutive", "must be >= 1")
        check(0.0 <= self.playout_share <= 1.0, f"{where}.playout_share", "must be in [0, 1]")
        check(0.0 <= self.target_false_positives < 1.0, f"{where}.target_false_positives",
              "must be in [0, 1)")
        check(-1.0 <= self.max_threshold <= 1.0, f"{where}.max_threshold", "must be in [-1, 1]")
        check(self.window >= 1, f"{where}.window", "must be >= 1")
        check(self.min_games >= 1, f"{where}.min_games", "must be >= 1")
        check(self.min_support >= 1, f"{where}.min_support", "must be >= 1")


@dataclass(frozen=True)
class PlayedOut:
    """A game played out with resignation off: the root value of every move (the mover's
    view), who moved, and who won."""

    values: np.ndarray  # (T,) float
    players: np.ndarray  # (T,) int
    winner: int | None


MAX_CANDIDATES = 256  # thresholds tried per adaptation (trigger levels, thinned to quantiles)


def trigger_levels(values: np.ndarray, consecutive: int) -> np.ndarray:
    """Running minimum over a player's moves of the max of its last `consecutive` values: at
    threshold t the player would first resign at window j, the first whose level is < t."""
    if len(values) < consecutive:
        return np.zeros(0)
    windows = np.lib.stride_tricks.sliding_window_view(values, consecutive).max(axis=1)
    return np.minimum.accumulate(windows)


def resigners(game: PlayedOut, thresholds: np.ndarray, consecutive: int) -> np.ndarray:
    """For each threshold, who the rule would have made resign first (-1: nobody)."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    best_ply = np.full(thresholds.shape, np.iinfo(np.int64).max)
    who = np.full(thresholds.shape, -1)
    for player in (0, 1):
        plies = np.flatnonzero(game.players == player)
        levels = trigger_levels(game.values[plies], consecutive)
        j = np.searchsorted(-levels, -thresholds, side="right")  # first level < threshold
        hit = j < len(levels)
        ply = np.where(hit, plies[np.minimum(j, len(levels) - 1) + consecutive - 1] if len(levels) else 0,
                       np.iinfo(np.int64).max)
        earlier = hit & (ply < best_ply)
        best_ply = np.where(earlier, ply, best_ply)
        who = np.where(earlier, player, who)
    return who


def false_positive_rates(games: Sequence[PlayedOut], thresholds: np.ndarray,
                         consecutive: int) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold: (share of the would-be resignations that were wrong, i.e. the resigner
    won or drew; 0 where none would happen), and how many would have happened."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    would = np.zeros(thresholds.shape, dtype=np.int64)
    wrong = np.zeros(thresholds.shape, dtype=np.int64)
    for g in games:
        who = resigners(g, thresholds, consecutive)
        would += who >= 0
        lost = -1 if g.winner is None else 1 - g.winner  # the one whose resignation was right
        wrong += (who >= 0) & (who != lost)
    return np.where(would > 0, wrong / np.maximum(would, 1), 0.0), would


class ResignTracker:
    """One worker's resignation rule and its adapting threshold."""

    def __init__(self, cfg: ResignConfig):
        self.cfg = cfg
        self.threshold = cfg.threshold
        self.recent: deque[PlayedOut] = deque(maxlen=cfg.window)

    def should_resign(self, own_values: Sequence[float]) -> bool:
        """Whether a player whose root values so far are `own_values` resigns now."""
        k = self.cfg.consecutive
        return (self.cfg.enabled and len(own_values) >= k
                and max(own_values[-k:]) < self.threshold)

    def record(self, game: PlayedOut) -> tuple[bool, bool]:
        """A played-out game: (a resignation would have happened at the current threshold,
        it would have been wrong); then the threshold adapts."""
        rate, would = false_positive_rates([game], np.array([self.threshold]), self.cfg.consecutive)
        self.recent.append(game)
        if self.cfg.adapt and len(self.recent) >= self.cfg.min_games:
            self.threshold = self.adapted()
        return bool(would[0]), bool(rate[0] > 0)

    def adapted(self) -> float:
        """The highest threshold <= max_threshold whose rate on the recent games is within
        the target, and that is no higher than the one in force unless at least
        `min_support` of those games would have resigned under it. The rate changes only
        where a threshold passes a trigger level, and at a level t it counts the levels
        below t, so the levels, max_threshold and the threshold in force are the
        candidates; the lowest level makes nobody resign (rate 0), and so does the threshold
        in force when every level is above it, so one always fits."""
        k, cap = self.cfg.consecutive, self.cfg.max_threshold
        levels = np.concatenate([trigger_levels(g.values[g.players == p], k)
                                 for g in self.recent for p in (0, 1)] + [np.zeros(0)])
        levels = np.unique(levels[levels <= cap])
        if len(levels) > MAX_CANDIDATES:
            levels = np.unique(np.quantile(levels, np.linspace(0, 1, MAX_CANDIDATES), method="lower"))
        current = min(self.threshold, cap)
        candidates = np.unique(np.concatenate([[cap, current], levels]))[::-1]
        rates, would = false_positive_rates(self.recent, candidates, k)
        supported = (candidates <= current) | (would >= self.cfg.min_support)
        fits = np.flatnonzero((rates <= self.cfg.target_false_positives) & supported)
        return float(candidates[fits[0]] if len(fits) else candidates[-1])
