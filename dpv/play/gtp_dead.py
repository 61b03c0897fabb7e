"""Dead stones at the end of a Go game (`final_status_list dead`, `final_score`).

OpenSpiel scores the board as it stands (area scoring, no dead stones), which is right for
games played out to the end. Games between people and most engines end with dead stones
still on the board, so the engine judges them: each point's ownership (+1 Black, -1 White)
is estimated, and a string whose points the opponent owns on average is dead.

Ownership comes from a network's ownership head where there is one (`ownership` callable),
and otherwise from random playouts: from the position (the final passes taken back), both
sides play uniformly random legal moves, except that nobody fills a one-point eye of their own
colour, until both pass; each playout's final board is area-scored point by point, and the
ownership is the mean over playouts. Strings in seki usually die in such playouts: the
engine knows no seki (`final_status_list seki` is empty).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyspiel
from scipy import ndimage

from dpv.games.scoring import AreaScore, area_score

PLAYOUTS = 64  # enough to separate a dead string (owned by the other side in most playouts)
DEAD_BELOW = 0.0  # a string is dead when its mean ownership, from its own side, is below this
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity: strings and regions


def point_owners(black: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Area-scoring owner of every point (+1 Black, -1 White, 0 neither): stones are their
    colour's, an empty region is the colour of the only colour it touches."""
    black = np.asarray(black, dtype=bool)
    white = np.asarray(white, dtype=bool)
    owner = black.astype(np.int8) - white.astype(np.int8)
    regions, count = ndimage.label(~(black | white), structure=_CROSS)
    if count:
        near_b = ndimage.binary_dilation(black, structure=_CROSS)
        near_w = ndimage.binary_dilation(white, structure=_CROSS)
        ids = np.arange(1, count + 1)
        touches_b = ndimage.maximum(near_b, regions, ids).astype(bool)
        touches_w = ndimage.maximum(near_w, regions, ids).astype(bool)
        colour = np.where(touches_b & ~touches_w, 1, np.where(touches_w & ~touches_b, -1, 0))
        empty = regions > 0
        owner[empty] = colour[regions[empty] - 1]
    return owner


def _own_eye(board: list[list[int]], r: int, c: int, colour: int) -> bool:
    """A one-point eye of `colour` (1 Black, 2 White) at empty (r, c) of a board padded with 3
    (off-board): every neighbour is ours or off-board, and the diagonals hold at most one
    opponent stone (none at all on the edge)."""
    up, down = board[r - 1], board[r + 1]
    for v in (up[c], down[c], board[r][c - 1], board[r][c + 1]):
        if v != colour and v != 3:
            return False
    diag = (up[c - 1], up[c + 1], down[c - 1], down[c + 1])
    other = 3 - colour
    bad = sum(1 for v in diag if v == other)
    edge = any(v == 3 for v in diag)
    return bad == 0 if edge else bad <= 1


class Playouts:
    """Random eye-keeping playouts of a Go game's positions (one pyspiel game, built with
    room for long playouts)."""

    def __init__(self, game, rng: np.random.Generator):
        self.game = game
        self.n = game.height
        params = dict(game.params)
        params["max_game_length"] = max(int(params.get("max_game_length", 0)), 20 * self.n * self.n)
        self.spiel = pyspiel.load_game("go", params)
        self.rng = rng
        self.pass_action = self.n * self.n

    def _board(self, s) -> list[list[int]]:
        """The board padded with 3 (off-board), 1 Black, 2 White, 0 empty, as lists: the
        eye test reads a few points per candidate move, and list reads are cheap."""
        black, white = self.game.stones(s)
        board = np.full((self.n + 2, self.n + 2), 3, dtype=np.int8)
        board[1:-1, 1:-1] = black + 2 * white
        return board.tolist()

    def start(self, history: list[int]):
        """A live pyspiel state at `history` with its final passes taken back (so a game that
        two passes ended can be played on)."""
        moves = list(history)
        while moves and moves[-1] == self.pass_action:
            moves.pop()
        s = self.spiel.new_initial_state()
        for a in moves:
            s.apply_action(a)
        return s

    def play_out(self, start) -> np.ndarray:
        """One playout from `start` (not modified); the owner of every point at its end."""
        s = start.clone()
        n, pass_action = self.n, self.pass_action
        passes = 0
        while not s.is_terminal() and passes < 2:
            board = self._board(s)
            colour = 1 if s.current_player() == 0 else 2
            legal = [a for a in s.legal_actions() if a != pass_action]
            self.rng.shuffle(legal)
            move = pass_action
            for a in legal:
                r, c = divmod(a, n)
                if not _own_eye(board, r + 1, c + 1, colour):
                    move = a
                    break
            passes = passes + 1 if move == pass_action else 0
            s.apply_action(move)
        black, white = self.game.stones(s)
        return point_owners(black, white)

    def ownership(self, history: list[int], playouts: int = PLAYOUTS) -> np.ndarray:
        start = self.start(history)
        total = np.zeros((self.n, self.n))
        for _ in range(playouts):
            total += self.play_out(start)
        return total / playouts


@dataclass(frozen=True)
class Judgement:
    dead: np.ndarray  # (H, W) bool: stones judged dead
    ownership: np.ndarray  # (H, W) in [-1, 1], + for Black
    score: AreaScore  # area score with the dead stones removed

    def dead_actions(self) -> list[int]:
        """Dead stones as actions (row * size + col), in board order."""
        return [int(i) for i in np.flatnonzero(self.dead.reshape(-1))]


Ownership = Callable[[list[int]], np.ndarray]  # history -> (H, W) ownership, + for Black


def judge(black: np.ndarray, white: np.ndarray, komi: float, ownership: np.ndarray) -> Judgement:
    """Dead strings from an ownership map, and the score once they are removed."""
    black = np.asarray(black, dtype=bool)
    white = np.asarray(white, dtype=bool)
    dead = np.zeros_like(black)
    for stones, sign in ((black, 1.0), (white, -1.0)):
        strings, count = ndimage.label(stones, structure=_CROSS)
        if not count:
            continue
        mean = np.asarray(ndimage.mean(sign * ownership, strings, np.arange(1, count + 1)))
        for i in np.flatnonzero(mean < DEAD_BELOW):
            dead |= strings == i + 1
    score = area_score(black & ~dead, white & ~dead, komi)
    return Judgement(dead, ownership, score)
