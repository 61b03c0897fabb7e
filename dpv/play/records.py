"""What a match produces: one `GameRecord` per game and a `MatchResult` that tallies them.

Tallies are from player A's view; a record knows which colour A had, so results from several
processes (arena workers, gating actors) are combined by concatenating their records.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from dpv.games.base import FIRST, SECOND
from dpv.players.base import MoveInfo

BLACK, WHITE = FIRST, SECOND  # the first player is Black (X in tic-tac-toe)
COLOUR_NAMES = ("black", "white")


@dataclass
class PlayerTotals:
    """What one side spent over a game (averages are taken by the arena)."""

    moves: int = 0
    seconds: float = 0.0
    flops: float = 0.0
    simulations: int = 0
    predicted_score: float = 0.0  # sum of the mover's predicted margins (score head)
    predicted_moves: int = 0  # moves that had one

    def add(self, info: MoveInfo, seconds: float) -> None:
        self.moves += 1
        self.seconds += seconds
        self.flops += float(info.flops)
        self.simulations += int(info.simulations)
        if info.predicted_score is not None:
            self.predicted_score += float(info.predicted_score)
            self.predicted_moves += 1


@dataclass
class GameRecord:
    black: str
    white: str
    game: str
    board_size: int
    komi: float
    moves: list[int] = field(default_factory=list)
    opening_moves: int = 0  # the first moves were chosen at random by the match, not by players
    winner: int | None = None  # BLACK (0), WHITE (1), None for a draw
    result: str = "0"  # 'B+3.5', 'W+R', 'B+F', '0'
    reason: str = "score"  # 'score' | 'max_length' | 'superko' (a draw) | 'resign' | 'forfeit'
    detail: str = ""  # why a forfeit happened
    score: float | None = None  # Black minus White minus komi, by our area scoring
    totals: list[PlayerTotals] = field(default_factory=lambda: [PlayerTotals(), PlayerTotals()])
    engine_scores: dict[str, str] = field(default_factory=dict)  # player -> its final_score answer
    score_disagreements: int = 0  # engines whose final_score named another winner than ours
    index: int = 0  # position in its match
    a_colour: int | None = None  # which colour player A had (matches between A and B)

    @property
    def length(self) -> int:
        return len(self.moves)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GameRecord:
        d = dict(d)
        d["totals"] = [PlayerTotals(**t) for t in d.get("totals", [{}, {}])]
        return cls(**d)


@dataclass
class MatchResult:
    """Games between A and B; tallies are from A's view."""

    a: str
    b: str
    records: list[GameRecord] = field(default_factory=list)

    def _count(self, colour: int | None = None) -> tuple[int, int, int]:
        w = l = d = 0
        for r in self.records:
            if colour is not None and r.a_colour != colour:
                continue
            if r.winner is None:
                d += 1
            elif r.winner == r.a_colour:
                w += 1
            else:
                l += 1
        return w, l, d

    @property
    def wins(self) -> int:
        return self._count()[0]

    @property
    def losses(self) -> int:
        return self._count()[1]

    @property
    def draws(self) -> int:
        return self._count()[2]

    @property
    def games(self) -> int:
        return len(self.records)

    @property
    def score(self) -> float:
        """A's points: wins + half the draws, over games (0.5 with no games: nothing is known)."""
        w, _, d = self._count()
        return (w + 0.5 * d) / self.games if self.games else 0.5

    def by_colour(self) -> dict[str, tuple[int, int, int]]:
        """A's (wins, losses, draws) when A had black and when A had white."""
        return {COLOUR_NAMES[c]: self._count(c) for c in (BLACK, WHITE)}

    def to_dict(self) -> dict[str, Any]:
        """The tallies (not the games), for logs and run state."""
        return {"a": self.a, "b": self.b, "wins": self.wins, "losses": self.losses,
                "draws": self.draws, "games": self.games, "score": self.score}

    @classmethod
    def combine(cls, parts: Sequence[MatchResult]) -> MatchResult:
        """One result from the parts of a match played apart (e.g. by several actors); the
        names are the first part's, the records in game order."""
        if not parts:
            return cls("a", "b")
        records = sorted((r for p in parts for r in p.records), key=lambda r: r.index)
        return cls(parts[0].a, parts[0].b, records)
