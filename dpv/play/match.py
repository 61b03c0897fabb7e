"""Playing games between two players: one game (`play_game`) and a colour-alternating match
(`play_match`). Used by the arena CLI, the experiments, and self-play gating.

A game ends by two passes or the length limit (scored by area with komi, as OpenSpiel's Go),
by resignation (a player's `select_move` raises `Resign`), or by forfeit: a player that
returns an illegal move or fails (`PlayerFailure`, e.g. a GTP engine that died) loses, the
reason is recorded, and the caller's match goes on.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.games.scoring import BLACK, WHITE, final_result, format_result, parse_result
from dpv.players.base import Player

COLOUR_NAMES = ("black", "white")


class Resign(Exception):
    """Raised by `select_move` when a player resigns."""


class PlayerFailure(DPVError):
    """A player could not take part in the game (engine died, timed out, broke protocol)."""


@dataclass
class PlayerTotals:
    """What one side spent over a game (averages are taken by the arena)."""

    moves: int = 0
    seconds: float = 0.0
    flops: float = 0.0
    simulations: int = 0

    def add(self, info, seconds: float) -> None:
        self.moves += 1
        self.seconds += seconds
        if info is not None:
            self.flops += float(info.flops)
            self.simulations += int(info.simulations)


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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GameRecord":
        d = dict(d)
        d["totals"] = [PlayerTotals(**t) for t in d.get("totals", [{}, {}])]
        return cls(**d)


def random_opening(game, n: int, rng: np.random.Generator) -> list[int]:
    """`n` random legal moves (never a pass) from the initial position, so deterministic
    players do not replay one game; fewer if the game ends first."""
    state = game.new_state()
    pass_action = game.num_actions - 1 if getattr(game, "has_pass", False) else None
    moves: list[int] = []
    for _ in range(n):
        if state.is_terminal():
            break
        legal = [a for a in state.legal_actions() if a != pass_action]
        if not legal:
            break
        a = int(legal[rng.integers(len(legal))])
        moves.append(a)
        state.apply(a)
    return moves


def _notify_all(players, state, action) -> tuple[int, str] | None:
    """Tell both players about a move; returns (colour, why) for a player that failed."""
    for colour, p in enumerate(players):
        try:
            p.notify_move(state, action)
        except PlayerFailure as e:
            return colour, f"{p.name}: {e}"
    return None


def play_game(
    black: Player,
    white: Player,
    game_cfg: GameConfig,
    opening_moves: int | Sequence[int] = 0,
    rng: np.random.Generator | None = None,
    game=None,
) -> GameRecord:
    """Play one game; `opening_moves` is a count of random opening moves (drawn from `rng`)
    or the opening's actions themselves. Both players are reset first."""
    game = game if game is not None else make_game(game_cfg)
    players = (black, white)
    size = getattr(game, "height", 0)
    komi = float(game.params.get("komi", 0.0)) if hasattr(game, "params") else 0.0
    rec = GameRecord(black=black.name, white=white.name, game=game_cfg.name,
                     board_size=size, komi=komi)
    if isinstance(opening_moves, int):
        opening = random_opening(game, opening_moves, rng if rng is not None else np.random.default_rng(0))
    else:
        opening = [int(a) for a in opening_moves]

    def forfeit(loser: int, why: str) -> GameRecord:
        rec.winner, rec.reason, rec.detail = loser ^ 1, "forfeit", why
        rec.result = format_result(rec.winner, reason="forfeit")
        return rec

    for colour, p in enumerate(players):
        try:
            p.reset()
        except PlayerFailure as e:
            return forfeit(colour, f"{p.name}: {e}")

    state = game.new_state()
    for a in opening:
        if not state.is_legal(a):
            raise DPVError(f"opening move {game.action_to_string(a)} is illegal")
        failed = _notify_all(players, state, a)
        if failed is not None:
            return forfeit(*failed)
        state.apply(a)
        rec.moves.append(a)
    rec.opening_moves = len(rec.moves)

    while not state.is_terminal():
        colour = state.current_player()
        p = players[colour]
        t0 = time.perf_counter()
        try:
            action = int(p.select_move(state))
        except Resign:
            rec.winner, rec.reason = colour ^ 1, "resign"
            rec.result = format_result(rec.winner, reason="resign")
            return rec
        except PlayerFailure as e:
            return forfeit(colour, f"{p.name}: {e}")
        seconds = time.perf_counter() - t0
        info = getattr(p, "last_move", None)
        rec.totals[colour].add(info, info.seconds if info is not None and info.seconds > 0 else seconds)
        if not state.is_legal(action):
            return forfeit(colour, f"{p.name} played an illegal move ({_move_text(game, action)})")
        failed = _notify_all(players, state, action)
        if failed is not None:
            return forfeit(*failed)
        state.apply(action)
        rec.moves.append(action)

    _score(rec, state, game, players)
    return rec


def _move_text(game, action: int) -> str:
    try:
        return game.action_to_string(action)
    except Exception:  # an action far outside the game has no name
        return str(action)


def _score(rec: GameRecord, state, game, players) -> None:
    """Final result by our rules; engines that can score are asked and compared."""
    if rec.game == "go":
        rec.winner, rec.score, end = final_result(state)
        rec.reason = {"two_passes": "score"}.get(end, end)
        rec.result = format_result(rec.winner, None if rec.score is None else abs(rec.score))
    else:
        rec.reason = "score"
        r = state.returns()
        rec.winner = BLACK if r[0] > r[1] else WHITE if r[1] > r[0] else None
        rec.result = format_result(rec.winner)
    if rec.reason == "superko":
        return  # our rules' draw; engines score the board and would always "disagree"
    for p in players:
        ask = getattr(p, "final_score", None)
        if ask is None or p.name in rec.engine_scores:
            continue
        try:
            answer = ask()
        except PlayerFailure as e:
            rec.engine_scores[p.name] = f"error: {e}"
            continue
        rec.engine_scores[p.name] = answer
        try:
            their_winner, _ = parse_result(answer)
        except ValueError:
            rec.score_disagreements += 1
            continue
        if their_winner != rec.winner:
            rec.score_disagreements += 1


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
        """A's points: wins + half the draws, over games (0.5 with no games)."""
        w, _, d = self._count()
        return (w + 0.5 * d) / self.games if self.games else 0.5

    def by_colour(self) -> dict[str, tuple[int, int, int]]:
        """A's (wins, losses, draws) when A had black and when A had white."""
        return {COLOUR_NAMES[c]: self._count(c) for c in (BLACK, WHITE)}


def pair_opening(game, opening_moves: int, seed: int, pair: int) -> list[int]:
    """The opening shared by games 2*pair and 2*pair+1 (same opening, colours swapped)."""
    return random_opening(game, opening_moves, np.random.default_rng([seed, pair]))


def play_match(
    a: Player,
    b: Player,
    game_cfg: GameConfig,
    games: int,
    *,
    opening_moves: int = 0,
    seed: int = 0,
    alternate: bool = True,
    on_game: Callable[[GameRecord], None] | None = None,
) -> MatchResult:
    """Play `games` games in this process. With `alternate`, A has black in even games and
    white in odd ones, and each pair of games shares one random opening."""
    game = make_game(game_cfg)
    result = MatchResult(a.name, b.name)
    for i in range(games):
        a_colour = BLACK if (i % 2 == 0 or not alternate) else WHITE
        opening = pair_opening(game, opening_moves, seed, i // 2 if alternate else i)
        black, white = (a, b) if a_colour == BLACK else (b, a)
        rec = play_game(black, white, game_cfg, opening, game=game)
        rec.index, rec.a_colour = i, a_colour
        result.records.append(rec)
        if on_game is not None:
            on_game(rec)
    return result
