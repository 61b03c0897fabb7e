"""MSDNet budgeted batch classification (Huang et al. 2018): per-exit confidence thresholds.

Exit shares follow a geometric law q_k ∝ p^k; p is solved so the expected cost
sum_k q_k FLOPs_k meets the budget. Thresholds are then read off the validation trace exit by
exit: among the samples still running, the ceil(q_k N) most confident stop at exit k, the
smallest of their confidences is threshold k; the last exit takes all. The validation average
FLOPs are then at most the budget (ties only stop more samples early); new data may differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from dpv.exits import ExitContext, ExitPolicy
from eexit_vision.policies.offline import check_budget
from eexit_vision.policies.scores import score
from eexit_vision.traces import Trace


@dataclass(frozen=True)
class PerExitThreshold(ExitPolicy):
    """Stop at exit k when the exit's score (max softmax by default) reaches thresholds[k]."""

    thresholds: tuple[float, ...]
    score: str = "max_prob"

    def decide(self, ctx: ExitContext) -> np.ndarray:
        s = score(self.score, ctx.logits[ctx.exit_index], ctx.legal_mask)
        return s >= self.thresholds[ctx.exit_index]


def geometric_shares(p: float, num_exits: int) -> np.ndarray:
    logq = np.arange(num_exits) * np.log(p)
    q = np.exp(logq - logq.max())
    return q / q.sum()


def solve_shares(flops: np.ndarray, budget: float) -> np.ndarray:
    """q ∝ p^k with sum q_k flops_k = budget (all on the last exit when it is affordable)."""
    flops = np.asarray(flops, dtype=np.float64)
    if budget >= flops[-1]:
        return np.eye(len(flops))[-1]
    if budget <= flops[0]:
        return np.eye(len(flops))[0]
    cost = lambda logp: geometric_shares(np.exp(logp), len(flops)) @ flops - budget
    return geometric_shares(np.exp(brentq(cost, -60.0, 60.0, xtol=1e-12)), len(flops))


def fit_msdnet(val: Trace, budget: float, score_name: str = "max_prob") -> PerExitThreshold:
    check_budget(budget, val.flops)
    q = solve_shares(val.flops, budget)
    n = val.size
    active = np.arange(n)
    thresholds = []
    for k in range(val.num_exits - 1):
        s = score(score_name, val.logits[k, active])
        # rounded up: at least the planned share has stopped by every exit, so the validation
        # average stays within the budget (floor would overshoot it by up to one sample per exit)
        take = int(np.ceil(q[k] * n - 1e-9))
        if take <= 0 or len(active) == 0:
            thresholds.append(np.inf)
            continue
        order = np.argsort(-s, kind="stable")
        t = s[order[min(take, len(active)) - 1]]
        thresholds.append(float(t))
        active = active[s < t] if take < len(active) else active[:0]
    thresholds.append(-np.inf)
    return PerExitThreshold(tuple(thresholds), score_name)
