"""The game clock of a GTP session, and how long the engine may think on a move.

Time systems (GTP `time_settings`, KGS `kgs-time_settings`):
  none       no limit: the player keeps its own simulations or FLOPs budget;
  absolute   main time only;
  byoyomi    main time, then `periods` periods of `period` seconds (Japanese): a move made
             within a period keeps it, a move that overruns it uses it up;
  canadian   main time, then `period` seconds for every `stones` moves.
`time_settings M B S` is Canadian; B = S = 0 is absolute; B > 0 with S = 0 means no limit
(GTP 2 spec, section 6.3.1). `time_left COLOUR T S` corrects the engine's own accounting:
S = 0 while main time runs, else the stones (Canadian) or periods (Japanese) left.

The share of a move: in main time, the remaining main time over the moves we still expect to
play (at least MIN_MOVES_LEFT), plus what byo-yomi lends; in byo-yomi, the period (over its
stones). Only SAFETY of it is used, less a fixed MARGIN for the reply's trip and the search's
last network call, so the engine never loses on time.
"""
from __future__ import annotations

from dataclasses import dataclass

SYSTEMS = ("none", "absolute", "byoyomi", "canadian")
SAFETY = 0.75  # of the share: the rest covers a slow step on a shared machine
MARGIN = 0.05  # seconds kept back on every move (reply I/O, the last network call)
MIN_MOVES_LEFT = 10  # never plan as if fewer moves than this remained
MIN_SHARE = 0.01  # seconds: even a nearly spent clock gets one short search


class ClockError(ValueError):
    """A time command with values that make no sense (the engine answers '? message')."""


@dataclass(frozen=True)
class TimeSystem:
    kind: str = "none"
    main: float = 0.0  # seconds
    period: float = 0.0  # byo-yomi seconds: per period (byoyomi) or per `stones` moves (canadian)
    stones: int = 0  # canadian: moves per period
    periods: int = 0  # byoyomi: number of periods

    @classmethod
    def from_gtp(cls, main: int, byo_yomi: int, stones: int) -> TimeSystem:
        """GTP's `time_settings main byo_yomi_time byo_yomi_stones` (Canadian)."""
        if min(main, byo_yomi, stones) < 0:
            raise ClockError("time_settings values must be >= 0")
        if byo_yomi > 0 and stones == 0:
            return cls("none")  # GTP 2: byo-yomi time without stones means no time limit
        if byo_yomi == 0:
            return cls("absolute", main=float(main))
        return cls("canadian", main=float(main), period=float(byo_yomi), stones=stones)

    @classmethod
    def from_kgs(cls, args: list[str]) -> TimeSystem:
        """KGS's `kgs-time_settings none | absolute M | byoyomi M B P | canadian M B S`."""
        if not args:
            raise ClockError("syntax error: kgs-time_settings none|absolute|byoyomi|canadian ...")
        kind, rest = args[0].lower(), args[1:]
        arity = {"none": 0, "absolute": 1, "byoyomi": 3, "canadian": 3}
        if kind not in arity:
            raise ClockError(f"unknown time system {args[0]!r} (none, absolute, byoyomi, canadian)")
        if len(rest) != arity[kind] or not all(a.isdigit() for a in rest):
            raise ClockError(f"syntax error: kgs-time_settings {kind} takes {arity[kind]} "
                             "whole numbers of seconds/stones")
        v = [int(a) for a in rest]
        if kind == "none":
            return cls("none")
        if kind == "absolute":
            return cls("absolute", main=float(v[0]))
        if kind == "byoyomi":
            if v[1] == 0 or v[2] == 0:
                return cls("absolute", main=float(v[0]))
            return cls("byoyomi", main=float(v[0]), period=float(v[1]), periods=v[2])
        if v[1] == 0 or v[2] == 0:
            return cls("absolute", main=float(v[0]))
        return cls("canadian", main=float(v[0]), period=float(v[1]), stones=v[2])


@dataclass
class SideClock:
    """One colour's clock: main time left, then the byo-yomi state."""

    main: float = 0.0
    period_left: float = 0.0  # seconds left in the current byo-yomi period
    stones_left: int = 0  # canadian: moves still due in this period
    periods_left: int = 0  # byoyomi: periods not yet used up
    lost: bool = False  # the clock ran out (we never let ours; the controller may say so)


class GameClock:
    """Both colours' clocks under one time system. `spend` is the engine's own accounting
    of a move; `time_left` is the controller's correction."""

    def __init__(self, system: TimeSystem | None = None):
        self.set_system(system or TimeSystem())

    @property
    def limited(self) -> bool:
        return self.system.kind != "none"

    def set_system(self, system: TimeSystem) -> None:
        self.system = system
        self.sides = [self._fresh(), self._fresh()]

    def _fresh(self) -> SideClock:
        s = self.system
        return SideClock(main=s.main, period_left=s.period, stones_left=s.stones,
                         periods_left=s.periods)

    def time_left(self, colour: int, seconds: float, stones: int) -> None:
        if seconds < 0 or stones < 0:
            raise ClockError("time_left values must be >= 0")
        side = self.sides[colour]
        kind = self.system.kind
        if stones == 0 or kind in ("none", "absolute"):
            side.main = float(seconds)
            side.period_left, side.stones_left = self.system.period, self.system.stones
            side.periods_left = self.system.periods
        elif kind == "canadian":
            side.main, side.period_left, side.stones_left = 0.0, float(seconds), stones
        else:  # byoyomi: seconds left in this period, `stones` periods left (KGS)
            side.main, side.period_left, side.periods_left = 0.0, float(seconds), stones
        side.lost = False

    def spend(self, colour: int, seconds: float) -> None:
        """Take one move's `seconds` off `colour`'s clock."""
        s, side = self.system, self.sides[colour]
        if s.kind == "none":
            return
        use = min(side.main, seconds)
        side.main -= use
        over = seconds - use
        if side.main > 0 or s.kind == "absolute":
            side.lost = side.lost or over > 0
            return
        if s.kind == "canadian":
            if use > 0 and over == 0:
                return  # the move ended in main time
            side.period_left -= over
            side.stones_left -= 1
            if side.period_left < 0:
                side.lost = True
            if side.stones_left <= 0:  # a new period
                side.period_left, side.stones_left = s.period, s.stones
            return
        # byoyomi: every whole period overrun is used up; the period restarts after a move
        while over > side.period_left and side.periods_left > 0:
            over -= side.period_left
            side.periods_left -= 1
            side.period_left = s.period
        if side.periods_left == 0:
            side.lost = True
        side.period_left = s.period

    def share(self, colour: int, move_number: int, board_points: int) -> float | None:
        """Seconds `colour` may think on this move, None without a time limit."""
        s, side = self.system, self.sides[colour]
        if s.kind == "none":
            return None
        moves_left = max(MIN_MOVES_LEFT, (expected_length(board_points) - move_number) / 2)
        if side.main > 0:
            share = side.main / moves_left
            if s.kind == "canadian":  # byo-yomi that follows lets us use main time faster
                share += s.period / s.stones * 0.5
            elif s.kind == "byoyomi":
                share += s.period * 0.5
            share = min(share, side.main + self._byo_share(side))
        else:
            share = self._byo_share(side)
        return max(MIN_SHARE, share * SAFETY - MARGIN)

    def _byo_share(self, side: SideClock) -> float:
        s = self.system
        if s.kind == "canadian":
            return side.period_left / max(side.stones_left, 1)
        if s.kind == "byoyomi":
            return side.period_left if side.periods_left > 0 else 0.0
        return 0.0


def expected_length(board_points: int) -> float:
    """Moves a whole game takes, about (9x9: ~97, 19x19: ~293): for planning main time."""
    return 0.7 * board_points + 40
