"""Area scoring with komi (Tromp-Taylor), the rule OpenSpiel's Go uses for its returns.

A point counts for a colour if it holds that colour's stone, or is empty and every stone its
empty region touches is of that colour. No dead-stone removal: games are played out, and a
GTP engine's `final_score` (which judges dead stones heuristically) is only a cross-check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BLACK, WHITE = 0, 1
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


@dataclass(frozen=True)
class AreaScore:
    black: int  # stones + territory
    white: int
    komi: float

    @property
    def margin(self) -> float:
        """Black's points minus White's points minus komi (> 0: Black wins)."""
        return self.black - self.white - self.komi

    @property
    def winner(self) -> int | None:
        m = self.margin
        return BLACK if m > 0 else WHITE if m < 0 else None

    @property
    def result(self) -> str:
        return format_result(self.winner, abs(self.margin))


def area_score(black: np.ndarray, white: np.ndarray, komi: float) -> AreaScore:
    """Score a board given as two (H, W) 0/1 arrays of Black's and White's stones."""
    black = np.asarray(black, dtype=bool)
    white = np.asarray(white, dtype=bool)
    h, w = black.shape
    empty = ~(black | white)
    seen = np.zeros_like(empty)
    b_area, w_area = int(black.sum()), int(white.sum())
    for y0 in range(h):
        for x0 in range(w):
            if not empty[y0, x0] or seen[y0, x0]:
                continue
            # flood one empty region, noting which colours border it
            stack, size, touches_b, touches_w = [(y0, x0)], 0, False, False
            seen[y0, x0] = True
            while stack:
                y, x = stack.pop()
                size += 1
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if not (0 <= ny < h and 0 <= nx < w):
                        continue
                    if empty[ny, nx]:
                        if not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                    elif black[ny, nx]:
                        touches_b = True
                    else:
                        touches_w = True
            if touches_b and not touches_w:
                b_area += size
            elif touches_w and not touches_b:
                w_area += size
    return AreaScore(b_area, w_area, float(komi))


def area_owner(black: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Owner of every point under the same rule, as an int8 (H, W) map: +1 Black, -1 White,
    0 neither (an empty region touching both colours, or none). Its sums are `area_score`'s."""
    black = np.asarray(black, dtype=bool)
    white = np.asarray(white, dtype=bool)
    owner = black.astype(np.int8) - white.astype(np.int8)
    regions, count = ndimage.label(~(black | white), structure=_CROSS)
    if count:
        ids = np.arange(1, count + 1)
        touches_b = ndimage.maximum(ndimage.binary_dilation(black, _CROSS), regions, ids).astype(bool)
        touches_w = ndimage.maximum(ndimage.binary_dilation(white, _CROSS), regions, ids).astype(bool)
        colour = np.where(touches_b & ~touches_w, 1, np.where(touches_w & ~touches_b, -1, 0))
        empty = regions > 0
        owner[empty] = colour[regions[empty] - 1]
    return owner


def score_state(state) -> AreaScore:
    """Area score of a Go `SpielState` (any position, terminal or not)."""
    black, white = state.game.stones(state.spiel_state)
    return area_score(black, white, state.game.params["komi"])


def end_reason(state) -> str | None:
    """Why a Go game is over: 'two_passes', 'max_length', 'superko' (OpenSpiel ends a game on
    a repeated position and calls it a draw), or None while it goes on."""
    if not state.is_terminal():
        return None
    moves = state.history()
    pass_action = state.game.pass_action
    if len(moves) >= 2 and moves[-1] == moves[-2] == pass_action:
        return "two_passes"
    if len(moves) >= state.game.max_game_length:
        return "max_length"
    return "superko"


def final_result(state) -> tuple[int | None, float | None, str]:
    """(winner, Black's margin or None, end reason) of a finished Go game, as OpenSpiel's
    returns have it: area score with komi, except a superko ending, which is a draw."""
    reason = end_reason(state)
    if reason is None:
        raise ValueError("the game is not over")
    if reason == "superko":
        return None, None, reason
    s = score_state(state)
    return s.winner, s.margin, reason


def format_result(winner: int | None, margin: float | None = None, reason: str = "") -> str:
    """SGF/GTP result text: 'B+3.5', 'W+R' (resign), 'B+F' (forfeit), '0' (draw)."""
    if winner is None:
        return "0"
    colour = "B" if winner == BLACK else "W"
    if reason == "resign":
        return f"{colour}+R"
    if reason == "forfeit":
        return f"{colour}+F"
    if margin is None:
        return f"{colour}+"
    return f"{colour}+{margin:g}"


_RESULT = re.compile(r"^\s*(?:(?P<c>[BW])\+(?P<m>[0-9]*\.?[0-9]*|R|Resign|T|Time|F|Forfeit)?|(?P<draw>0|Draw|Jigo))\s*$",
                     re.IGNORECASE)


def parse_result(text: str) -> tuple[int | None, float | None]:
    """'W+0.5' -> (WHITE, 0.5); 'B+R' -> (BLACK, None); '0' -> (None, 0.0).

    ValueError names the text when it is not a result (e.g. an engine's odd answer)."""
    m = _RESULT.match(text)
    if not m:
        raise ValueError(f"not a game result: {text!r}")
    if m.group("draw"):
        return None, 0.0
    winner = BLACK if m.group("c").upper() == "B" else WHITE
    raw = m.group("m") or ""
    try:
        margin = float(raw) if raw else None
    except ValueError:
        margin = None  # R / T / F
    return winner, margin
