"""The arena's summary of a match: typed fields, `to_json()` for summary.json (whose keys users
and tests read, so they do not change), and `report()` for the terminal."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from dpv.games.registry import game_info
from dpv.games.scoring import parse_result
from dpv.play.plan import MatchPlan
from dpv.play.records import BLACK, GameRecord, MatchResult
from dpv.play.stats import WinRate, win_rate


def sgf_name(rec: GameRecord) -> str:
    return f"game_{rec.index + 1:04d}.sgf"


@dataclass(frozen=True)
class WLD:
    wins: int
    losses: int
    draws: int

    def mirrored(self) -> WLD:
        """The same games from the opponent's side."""
        return WLD(self.losses, self.wins, self.draws)

    def to_dict(self) -> dict[str, int]:
        return {"wins": self.wins, "losses": self.losses, "draws": self.draws}


@dataclass(frozen=True)
class SideResult:
    """One player's results: all games, and those it had black / white in."""

    total: WLD
    as_black: WLD
    as_white: WLD

    def mirrored(self) -> SideResult:
        # the opponent had white where this side had black
        return SideResult(self.total.mirrored(), self.as_white.mirrored(), self.as_black.mirrored())


@dataclass(frozen=True)
class SideSpend:
    """What one player spent per move over the match (None before its first move)."""

    name: str
    spec: str
    moves: int
    seconds_per_move: float | None
    flops_per_move: float | None
    simulations_per_move: float | None
    # mean over its moves of the margin its score head predicted, from its own view (None
    # for players without a score head; summary.json has the key only where it is known)
    mean_predicted_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if d["mean_predicted_score"] is None:
            del d["mean_predicted_score"]
        return d


@dataclass(frozen=True)
class ScoreCheck:
    """Engines' own final_score against ours, over the games where an engine answered."""

    games_with_engine_score: int
    winner_disagreements: int
    exact_margin_agreements: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ArenaSummary:
    setup: MatchPlan
    a_name: str
    b_name: str
    games_played: int
    interrupted: bool
    stopped_by: str
    a_rate: WinRate
    a_result: SideResult
    avg_game_length: float | None
    per_player: dict[str, SideSpend]  # "a", "b"
    end_reasons: dict[str, int]
    score_check: ScoreCheck
    records: list[GameRecord] = field(default_factory=list)

    @property
    def b_result(self) -> SideResult:
        return self.a_result.mirrored()

    @classmethod
    def of(cls, match: MatchResult, setup: MatchPlan, interrupted: bool = False,
           stopped_by: str = "") -> ArenaSummary:
        recs = match.records
        by = match.by_colour()
        spend = {}
        for who, name, spec, is_a in (("a", match.a, setup.spec_a, True),
                                      ("b", match.b, setup.spec_b, False)):
            moves = sims = predicted_moves = 0
            seconds = flops = predicted = 0.0
            for r in recs:
                a_colour = r.a_colour if r.a_colour is not None else BLACK
                t = r.totals[a_colour if is_a else a_colour ^ 1]
                moves, seconds, flops, sims = (moves + t.moves, seconds + t.seconds,
                                               flops + t.flops, sims + t.simulations)
                predicted, predicted_moves = predicted + t.predicted_score, predicted_moves + t.predicted_moves
            spend[who] = SideSpend(name, spec, moves, seconds / moves if moves else None,
                                   flops / moves if moves else None, sims / moves if moves else None,
                                   predicted / predicted_moves if predicted_moves else None)
        reasons: dict[str, int] = {}
        for r in recs:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        checked = [r for r in recs if r.engine_scores]
        exact = sum(1 for r in checked for ans in r.engine_scores.values() if _same_margin(ans, r.score))
        return cls(
            setup=setup, a_name=match.a, b_name=match.b, games_played=len(recs),
            interrupted=interrupted, stopped_by=stopped_by,
            a_rate=win_rate(match.wins, match.losses, match.draws),
            a_result=SideResult(WLD(match.wins, match.losses, match.draws),
                                WLD(*by["black"]), WLD(*by["white"])),
            avg_game_length=sum(r.length for r in recs) / len(recs) if recs else None,
            per_player=spend, end_reasons=reasons,
            score_check=ScoreCheck(len(checked), sum(r.score_disagreements for r in recs), exact),
            records=list(recs))

    def to_dict(self) -> dict[str, Any]:
        """The summary.json content; its keys are what users and tests read."""
        s, cfg, b = self.setup, self.setup.game_cfg, self.b_result
        recs = self.records
        return {
            "a": s.spec_a, "b": s.spec_b, "a_name": self.a_name, "b_name": self.b_name,
            "colours": "alternated" if s.alternate else "a=black, b=white",
            "game": cfg.name, "board_size": cfg.board_size, "komi": cfg.komi,
            "games_planned": s.games, "games_played": self.games_played,
            "interrupted": self.interrupted, "stopped_by": self.stopped_by, "seed": s.seed,
            "opening_moves": s.opening_moves,
            "a_result": {**self.a_rate.to_dict(), "as_black": self.a_result.as_black.to_dict(),
                         "as_white": self.a_result.as_white.to_dict()},
            "b_result": {**b.total.to_dict(), "as_black": b.as_black.to_dict(),
                         "as_white": b.as_white.to_dict()},
            "avg_game_length": self.avg_game_length,
            "per_player": {who: p.to_dict() for who, p in self.per_player.items()},
            "end_reasons": dict(self.end_reasons),
            "forfeits": [{"game": r.index + 1, "result": r.result, "detail": r.detail}
                         for r in recs if r.reason == "forfeit"],
            "score_check": self.score_check.to_dict(),
            "games": [{"game": r.index + 1, "black": r.black, "white": r.white, "result": r.result,
                       "reason": r.reason, "moves": r.length, "sgf": sgf_name(r),
                       **({"detail": r.detail} if r.detail else {}),
                       **({"engine_scores": r.engine_scores} if r.engine_scores else {})}
                      for r in recs],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def game_text(self) -> str:
        """'9x9 Go, komi 7.5' for a game played on boards of a chosen size, else its name."""
        cfg = self.setup.game_cfg
        info = game_info(cfg.name)
        if info is None:
            return cfg.name
        if info.board_sizes is None:
            return info.title
        return f"{cfg.board_size}x{cfg.board_size} {info.title}, komi {cfg.komi:g}"

    def report(self) -> str:
        """The summary as a short human-readable table."""
        pp, rate = self.per_player, self.a_rate

        def fmt(x: float | None, spec: str) -> str:
            return "-" if x is None else format(x, spec)

        lines = [
            f"{self.games_played}/{self.setup.games} games, {self.game_text()}"
            + (" (interrupted)" if self.interrupted else "")
            + (f" (stopped: {self.stopped_by})" if self.stopped_by else ""),
            f"{'player':<28} {'W':>4} {'L':>4} {'D':>4}  {'as black W/L/D':>15}  {'as white W/L/D':>15}  "
            f"{'s/move':>8} {'FLOPs/move':>11}",
        ]
        for who, res in (("a", self.a_result), ("b", self.b_result)):
            p, t, bk, wt = pp[who], res.total, res.as_black, res.as_white
            lines.append(f"{p.name[:28]:<28} {t.wins:>4} {t.losses:>4} {t.draws:>4}  "
                         f"{bk.wins:>5}/{bk.losses}/{bk.draws:<6}  {wt.wins:>5}/{wt.losses}/{wt.draws:<6}  "
                         f"{fmt(p.seconds_per_move, '8.4f')} {fmt(p.flops_per_move, '11.3g')}")
        lines.append(f"{pp['a'].name} score {100 * rate.score:.1f}% (Wilson 95% "
                     f"[{100 * rate.low:.1f}, {100 * rate.high:.1f}]), "
                     f"Elo diff {_elo(rate.elo)} [{_elo(rate.elo_low)}, {_elo(rate.elo_high)}]")
        for who in ("a", "b"):
            if pp[who].mean_predicted_score is not None:
                lines.append(f"{pp[who].name}: mean predicted score {pp[who].mean_predicted_score:+.1f} "
                             f"points (its score head, its own view, over its moves)")
        lines.append(f"average game length {fmt(self.avg_game_length, '.1f')} moves; "
                     f"end reasons {self.end_reasons}")
        sc = self.score_check
        if sc.games_with_engine_score:
            lines.append(f"engine final_score checked on {sc.games_with_engine_score} games: "
                         f"{sc.winner_disagreements} winner disagreements, "
                         f"{sc.exact_margin_agreements} exact margin agreements")
        for r in self.records:
            if r.reason == "forfeit":
                lines.append(f"game {r.index + 1}: {r.result} forfeit: {r.detail}")
        return "\n".join(lines)


def _elo(x: float) -> str:
    return f"{x:+.0f}" if not math.isinf(x) else ("+inf" if x > 0 else "-inf")


def _same_margin(answer: str, score: float | None) -> bool:
    try:
        winner, margin = parse_result(answer)
    except ValueError:
        return False
    if score is None or margin is None:
        return False
    return abs((margin if winner == BLACK else -margin) - score) < 1e-6

