"""Handicap stones: where `fixed_handicap` puts them, and how a set of Black stones becomes a
position OpenSpiel's Go can hold.

OpenSpiel's Go has no setup-stone API. Its `handicap` parameter places the GTP fixed stones
(the list below), with White to move, but only on 19x19: on other boards it raises (its
placement is written for 19x19). So a handicap position is held one of two ways:
  parameter   19x19 and exactly the fixed stones for their number: the game is built with
              OpenSpiel's `handicap` parameter;
  moves       otherwise: the stones are played as Black moves with White passing between them
              (the engine's `setup` count keeps `undo` from taking them back). The position
              and the rules are the same; the history planes the network sees show the passes.
White stones, and Black stones on a board already played on, cannot be set up either way.
"""
from __future__ import annotations

from dpv.games.coords import action_to_vertex


class HandicapError(ValueError):
    """A handicap request that cannot be served (the engine answers '? message')."""


def max_handicap(size: int) -> int:
    """GTP 2 spec, section 4.1.1: 9 stones on odd boards from 9x9, 4 on 7x7 and on even
    boards, none below 7x7."""
    if size < 7:
        return 0
    if size == 7 or size % 2 == 0:
        return 4
    return 9


def fixed_points(size: int, n: int) -> list[int]:
    """The actions of the GTP fixed handicap stones, in the spec's order (as GNU Go and
    OpenSpiel place them)."""
    top = max_handicap(size)
    if not 2 <= n <= top:
        raise HandicapError(f"invalid handicap {n} for a {size}x{size} board "
                            f"(2 to {top})" if top else f"no handicap on a {size}x{size} board")
    d = 3 if size >= 13 else 2  # the 4-4 points from 13x13 up, 3-3 points below
    lo, hi, mid = d, size - 1 - d, size // 2

    def at(row: int, col: int) -> int:
        return row * size + col

    corners = [at(lo, lo), at(hi, hi), at(hi, lo), at(lo, hi)]  # D4 Q16 D16 Q4 on 19x19
    sides = [at(mid, lo), at(mid, hi)]  # D10 Q10
    ends = [at(lo, mid), at(hi, mid)]  # K4 K16
    centre = at(mid, mid)
    layout = {
        2: corners[:2], 3: corners[:3], 4: corners,
        5: corners + [centre], 6: corners + sides, 7: corners + sides + [centre],
        8: corners + sides + ends, 9: corners + sides + ends + [centre],
    }
    return layout[n]


def vertices(actions: list[int], size: int) -> str:
    return " ".join(action_to_vertex(a, size) for a in actions)


def uses_parameter(size: int, stones: set[int]) -> bool:
    """True when OpenSpiel's `handicap` parameter can hold exactly these Black stones."""
    n = len(stones)
    return size == 19 and 2 <= n <= 9 and stones == set(fixed_points(size, n))


def check_free(size: int, stones: list[int]) -> None:
    """GTP set_free_handicap: 2 or more distinct points on the board, fewer than all of them."""
    if len(stones) < 2:
        raise HandicapError("set_free_handicap needs at least 2 stones")
    if len(set(stones)) != len(stones):
        raise HandicapError("set_free_handicap: a vertex is given twice")
    if any(a == size * size for a in stones):
        raise HandicapError("set_free_handicap: pass is not a vertex")
    if len(stones) >= size * size:
        raise HandicapError("set_free_handicap: too many stones for the board")
