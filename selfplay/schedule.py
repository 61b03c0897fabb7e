"""When to train, which exit self-play uses, and when a run is done: pure functions of counters.

Thesis schedule (go9_paper.yaml): training starts after `start_games` games, then
`steps_per_block` steps per `games_per_block` new games. The allowance grows continuously
(steps_per_block * (games - start + games_per_block) / games_per_block), so the learner can
interleave with self-play instead of waiting for each block of games to finish.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Counters:
    """Everything a resumed run continues from (saved in every checkpoint)."""

    games: int = 0  # self-play games added to the buffer
    positions: int = 0  # positions added (before symmetry copies)
    steps: int = 0  # learner steps
    model_version: int = 0  # bumped each time the learner's weights are snapshot for gating
    best_version: int = 0  # version of the network self-play uses
    best_step: int = 0  # learner step at which the best network was taken
    gating_matches: int = 0
    gating_promotions: int = 0
    last_gate_step: int = 0
    last_anchor_step: int = 0
    seconds: float = 0.0  # wall time this run has been running, over all sessions
    sessions: int = 0  # how many times the run was started or resumed

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "Counters":
        c = cls()
        for k, v in d.items():
            if hasattr(c, k):
                setattr(c, k, type(getattr(c, k))(v))
        return c


def allowed_steps(games: int, start_games: int, steps_per_block: int, games_per_block: int) -> int:
    if games < start_games:
        return 0
    return int(steps_per_block * (games - start_games + games_per_block) // games_per_block)


@dataclass(frozen=True)
class Limits:
    """Run limits from the command line; none set = run until Ctrl-C."""

    max_games: int | None = None
    max_steps: int | None = None
    hours: float | None = None

    def reached(self, c: Counters) -> str | None:
        if self.max_games is not None and c.games >= self.max_games:
            return f"reached --max-games {self.max_games}"
        if self.max_steps is not None and c.steps >= self.max_steps:
            return f"reached --max-steps {self.max_steps}"
        if self.hours is not None and c.seconds >= self.hours * 3600:
            return f"reached --hours {self.hours}"
        return None

    def progress(self, c: Counters) -> float | None:
        """Share of the run done, by the tightest limit set (None when no limit is set)."""
        parts = []
        if self.max_games:
            parts.append(c.games / self.max_games)
        if self.max_steps:
            parts.append(c.steps / self.max_steps)
        if self.hours:
            parts.append(c.seconds / (self.hours * 3600))
        return min(1.0, max(parts)) if parts else None


def selfplay_exit(variant: str, configured_exit: int, num_exits: int, progress: float | None) -> int:
    """The exit self-play searches with. multi_step walks from the shallowest exit to the
    deepest through equal intervals of the run (four for the thesis's four exits)."""
    if variant != "multi_step":
        return configured_exit % num_exits
    if progress is None:
        raise ValueError("multi_step needs a run length (--max-games, --max-steps or --hours)")
    return min(num_exits - 1, int(math.floor(progress * num_exits)))
