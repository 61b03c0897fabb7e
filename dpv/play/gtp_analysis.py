"""Live analysis lines: what `lz-analyze` / `kata-analyze` print, read off the search tree.

One line per report, one `info move ...` group per candidate move (the root's visited
children, most visited first):

  Leela Zero  info move D4 visits 120 winrate 5623 prior 1840 lcb 5400 order 0
              exitshare 6200,3000,800 pv D4 C3 ...          (winrate, prior, lcb in 1/10,000)
  KataGo      info move D4 visits 120 winrate 0.5623 prior 0.1840 lcb 0.5400 order 0
              exitShare 0.6200,0.3000,0.0800 pv D4 C3 ...   (fractions)

`winrate` is the candidate's mean backed-up value Q from the side to move, mapped from
[-1, 1] to [0, 1] as (1 + Q) / 2. `lcb` is a lower confidence bound on it:
    lcb = max(0, w - 1.96 * sqrt(w * (1 - w) / N))      (N = the candidate's visits)
since a value in [0, 1] with mean w has variance at most w (1 - w) (Bhatia-Davis), this
bounds the standard error without storing each node's variance. `exitshare` (our field, before `pv`
so Lizzie and Sabaki skip it as an unknown key) is the share of this analysis's network
evaluations that stopped at each exit, shallowest first: the early exits at work.
KataGo's `scoreLead` (and `scoreMean`, which KataGo prints equal to it) needs a network
with a score head (`net.aux_heads`): it is the score head's expected margin for the side to
move after the candidate, read at the child position (the search backs up values only, so
it is the network's estimate, not an average over the subtree); nets without the head leave
both fields out. `ownership true` appends the root position's ownership from the same
network (side to move +1, top row first, as KataGo), and nothing without the head.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpv.games.coords import action_to_vertex
from dpv.mcts.search import MCTS
from dpv.mcts.tree import NO_NODE
from dpv.players.net_player import principal_variation

LCB_Z = 1.96
PV_LENGTH = 10
DIALECTS = ("lz", "kata")


class AnalysisError(ValueError):
    """Bad analysis arguments (the engine answers '? message')."""


@dataclass(frozen=True)
class AnalysisRequest:
    """A parsed `lz-analyze` / `kata-analyze` (or their genmove forms) command."""

    dialect: str  # 'lz' | 'kata'
    colour: int | None  # the side the command names, None when it names none
    interval: float  # seconds between reports; 0: one report when the analysis stops
    max_moves: int | None = None  # report at most this many candidates
    min_moves: int = 0  # accepted for compatibility: we report every visited candidate anyway
    ownership: bool = False  # kata's ownership request (answered only by nets with the head)


COLOURS = {"b": 0, "black": 0, "w": 1, "white": 1}


def parse_request(command: str, args: list[str]) -> AnalysisRequest:
    """`lz-analyze [colour] [interval] [key value ...]`; `kata-analyze` also takes the keys
    `interval` and `ownership`. Negative or non-integer intervals are errors."""
    dialect = "kata" if command.startswith("kata") else "lz"
    rest = list(args)
    colour = None
    if rest and rest[0].lower() in COLOURS:
        colour = COLOURS[rest.pop(0).lower()]
    interval_cs = 0
    if rest and _is_int(rest[0]):
        interval_cs = _interval(rest.pop(0))
    opts: dict[str, str] = {}
    while rest:
        key = rest.pop(0)
        if not rest:
            raise AnalysisError(f"syntax error: {command} option {key!r} needs a value")
        opts[key] = rest.pop(0)
    max_moves, min_moves, ownership = None, 0, False
    for key, value in opts.items():
        if key == "interval":
            interval_cs = _interval(value)
        elif key in ("maxmoves", "minmoves"):
            if not value.isdigit():
                raise AnalysisError(f"syntax error: {key} must be a whole number, got {value!r}")
            if key == "maxmoves":
                max_moves = int(value) or None
            else:
                min_moves = int(value)
        elif key == "ownership" and dialect == "kata":
            if value.lower() not in ("true", "false"):
                raise AnalysisError(f"syntax error: ownership true|false, got {value!r}")
            ownership = value.lower() == "true"
        else:
            raise AnalysisError(f"{command}: option {key!r} is not supported")
    return AnalysisRequest(dialect, colour, interval_cs / 100.0, max_moves, min_moves, ownership)


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _interval(text: str) -> int:
    if not _is_int(text):
        raise AnalysisError(f"syntax error: interval must be a whole number of centiseconds, got {text!r}")
    value = int(text)
    if value < 0:
        raise AnalysisError(f"syntax error: interval must be >= 0 centiseconds, got {value}")
    return value


@dataclass(frozen=True)
class Candidate:
    action: int
    visits: int
    winrate: float  # in [0, 1], for the side to move
    prior: float
    lcb: float
    order: int
    pv: list[int]
    score_lead: float | None = None  # the side to move's expected margin after the move


def lcb(winrate: float, visits: int, z: float = LCB_Z) -> float:
    """Lower confidence bound of a mean in [0, 1] over `visits` samples (see the module doc)."""
    if visits <= 0:
        return 0.0
    w = min(1.0, max(0.0, winrate))
    return max(0.0, w - z * math.sqrt(w * (1.0 - w) / visits))


def candidates(mcts: MCTS, max_moves: int | None = None) -> list[Candidate]:
    """The root's visited children, most visited first (ties: higher prior first). The tree
    must be up to date (`MCTS.sync` while a search runs)."""
    t = mcts.tree
    if t.root == NO_NODE or not t.expanded(t.root):
        return []
    sl = t.children(t.root)
    visits = t.visits[sl]
    seen = np.flatnonzero(visits > 0)
    order = seen[np.lexsort((-t.prior[sl][seen], -visits[seen]))]
    if max_moves is not None:
        order = order[:max_moves]
    out = []
    for rank, i in enumerate(order):
        node = sl.start + int(i)
        n = int(round(float(t.visits[node])))
        w = (1.0 + float(t.value_sum[node]) / float(t.visits[node])) / 2.0
        action = int(t.action[node])
        out.append(Candidate(action, n, w, float(t.prior[node]), lcb(w, n), rank,
                             principal_variation(t, action, PV_LENGTH)))
    return out


def exit_share(histogram: np.ndarray) -> np.ndarray:
    total = histogram.sum()
    return histogram / total if total > 0 else np.zeros(len(histogram))


def info_line(found: list[Candidate], share: np.ndarray, size: int, dialect: str,
              ownership: np.ndarray | None = None) -> str:
    """One report line in the request's dialect ('' when there is no candidate yet);
    `ownership` (kata, (H, W) from the side to move, row 0 = rank 1) goes at its end."""
    groups = []
    for c in found:
        move = action_to_vertex(c.action, size)
        pv = " ".join(action_to_vertex(a, size) for a in c.pv)
        if dialect == "lz":
            shares = ",".join(str(int(round(10000 * s))) for s in share)
            groups.append(f"info move {move} visits {c.visits} winrate {_lz(c.winrate)} "
                          f"prior {_lz(c.prior)} lcb {_lz(c.lcb)} order {c.order} "
                          f"exitshare {shares} pv {pv}")
        else:
            shares = ",".join(f"{s:.4f}" for s in share)
            score = ("" if c.score_lead is None else
                     f"scoreMean {c.score_lead:.3f} scoreLead {c.score_lead:.3f} ")
            groups.append(f"info move {move} visits {c.visits} winrate {c.winrate:.6f} "
                          f"{score}prior {c.prior:.6f} lcb {c.lcb:.6f} order {c.order} "
                          f"exitShare {shares} pv {pv}")
    line = " ".join(groups)
    if line and ownership is not None and dialect == "kata":
        line += " ownership " + " ".join(f"{v:.6f}" for v in ownership[::-1].reshape(-1))
    return line


def _lz(x: float) -> int:
    return int(round(10000 * min(1.0, max(0.0, x))))
