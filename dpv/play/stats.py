"""Match statistics: win rate with a Wilson score interval, Elo difference with its interval.

Draws count half a win. The Elo interval is the Wilson interval mapped through the Elo
curve (monotone), so it is as wide as the evidence and never leaves the real line except at
a score of 0 or 1, where it is unbounded on that side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion successes/n (successes may be fractional)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 the bound is exactly 0 or 1; rounding would leave a finite Elo there
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def elo_from_score(p: float) -> float:
    """Elo difference that gives expected score p: -400 log10(1/p - 1)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return -400.0 * math.log10(1.0 / p - 1.0)


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    draws: int
    score: float  # (wins + draws/2) / games
    low: float  # Wilson 95% interval of the score
    high: float
    elo: float
    elo_low: float
    elo_high: float

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    def to_dict(self) -> dict:
        """JSON-safe: an unbounded Elo end is written as null."""
        def fin(x: float):
            return None if math.isinf(x) else round(x, 2)

        return {"wins": self.wins, "losses": self.losses, "draws": self.draws, "games": self.games,
                "score": round(self.score, 4), "wilson95": [round(self.low, 4), round(self.high, 4)],
                "elo": fin(self.elo), "elo95": [fin(self.elo_low), fin(self.elo_high)]}

    def describe(self) -> str:
        def e(x: float) -> str:
            return f"{x:+.0f}" if not math.isinf(x) else ("+inf" if x > 0 else "-inf")

        return (f"{100 * self.score:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]  "
                f"Elo {e(self.elo)} [{e(self.elo_low)}, {e(self.elo_high)}]")


def win_rate(wins: int, losses: int, draws: int = 0, z: float = Z95) -> WinRate:
    n = wins + losses + draws
    points = wins + 0.5 * draws
    score = points / n if n else 0.5
    low, high = wilson_interval(points, n, z)
    return WinRate(wins, losses, draws, score, low, high,
                   elo_from_score(score), elo_from_score(low), elo_from_score(high))
