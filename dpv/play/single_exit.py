"""Table 6.3's opponent: the single best exit under the same FLOPs budget.

Table 6.2's same-budget row plays every shallow exit k (with about n_ref x FLOPs(deepest) /
FLOPs(k) simulations) against the deepest exit (n_ref simulations). The deepest exit, set
against itself, would score 0.5; so the best single exit is the shallow exit with the
highest score above 0.5, and the deepest exit when no shallow exit beats it.
"""
from __future__ import annotations

from typing import Any, Mapping

from dpv.errors import DPVError


def best_single_exit(same_budget_scores: Mapping[int, float], deepest: int) -> int:
    """The exit to play under the same budget, from each shallow exit's score against the
    deepest (ties: the shallower exit; a score of exactly 0.5 does not beat the deepest)."""
    best, best_score = deepest, 0.5
    for k in sorted(same_budget_scores):
        if not 0 <= k < deepest:
            raise DPVError(f"exit {k} is not a shallow exit (0..{deepest - 1})")
        if same_budget_scores[k] > best_score:
            best, best_score = k, same_budget_scores[k]
    return best


def best_exit_for(best: Mapping[str, int], n_ref: int, exits: int, where: str) -> int:
    """The best single exit recorded for n_ref (or for every n_ref: key '*')."""
    k = best.get(str(n_ref), best.get("*"))
    if k is None:
        raise DPVError(f"no best exit for n_ref={n_ref}: give --best-exit or a Table 6.2 JSON that has it")
    if not 0 <= k < exits:
        raise DPVError(f"best exit {k} is not an exit of {where} (0..{exits - 1})")
    return k


def opponent_spec(spec: Any, exit_index: int, n_ref: int) -> str:
    """The single exit's player under the budget n_ref x FLOPs(deepest); `spec` builds a net
    spec from options (CellRunner.spec)."""
    return spec(mode="fixed_budget", exit=exit_index, n_ref=n_ref)
