"""Score an exit policy on a trace, and fit a one-parameter policy family to a FLOPs budget."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from dpv.errors import DPVError
from dpv.exits import ExitPolicy, run_offline
from eexit_vision.combiners import Combiner, predict
from eexit_vision.traces import Trace


@dataclass
class OfflineResult:
    accuracy: float
    avg_flops: float  # mean cost per sample: trace.flops at the exit each sample stopped at
    exit_share: np.ndarray  # (K,) fraction of samples stopping at each exit
    exit_index: np.ndarray  # (N,)
    prediction: np.ndarray  # (N,)


def evaluate_policy(policy: ExitPolicy, trace: Trace, combiner: Combiner | None = None) -> OfflineResult:
    """Run `policy` on the trace; the answer is the exit it selects (recall policies may look
    back), or, with a combiner, the combination of every exit computed up to the stop."""
    dec = run_offline(policy, trace.logits, flops=trace.flops)
    n = trace.size
    if combiner is None:
        pred = trace.logits[dec.answer_exit, np.arange(n)].argmax(-1)
    else:
        pred = np.empty(n, dtype=np.int64)
        for k in range(trace.num_exits):
            rows = np.flatnonzero(dec.exit_index == k)
            if len(rows):
                pred[rows] = predict(combiner, [l[rows] for l in trace.logits[: k + 1]])
    share = np.bincount(dec.exit_index, minlength=trace.num_exits) / n
    return OfflineResult(float((pred == trace.labels).mean()), float(trace.flops[dec.exit_index].mean()),
                         share, dec.exit_index, pred)


def check_budget(budget: float, flops: np.ndarray) -> None:
    if not np.isfinite(budget) or budget < flops[0]:
        raise DPVError(f"budget {budget:.4g} FLOPs per sample is below the cheapest exit "
                       f"({flops[0]:.4g} FLOPs at exit 0)")


@dataclass
class Candidate:
    param: float
    policy: ExitPolicy
    val: OfflineResult


def candidates(make: Callable[[float], ExitPolicy], grid: Iterable[float], val: Trace) -> list[Candidate]:
    """Every member of a one-parameter family, scored once on validation (reused across budgets)."""
    out = []
    for g in grid:
        pol = make(float(g))
        out.append(Candidate(float(g), pol, evaluate_policy(pol, val)))
    return out


def pick_under_budget(cands: list[Candidate], budget: float, flops: np.ndarray) -> Candidate | None:
    """The candidate with the best validation accuracy among those whose validation average
    FLOPs stay within `budget` (ties go to the cheaper one); None if no candidate fits."""
    check_budget(budget, flops)
    ok = [c for c in cands if c.val.avg_flops <= budget * (1 + 1e-9)]
    return max(ok, key=lambda c: (c.val.accuracy, -c.val.avg_flops)) if ok else None


def fit_to_budget(make: Callable[[float], ExitPolicy], grid: Iterable[float], val: Trace,
                  budget: float) -> tuple[ExitPolicy, float]:
    check_budget(budget, val.flops)
    best = pick_under_budget(candidates(make, grid, val), budget, val.flops)
    if best is None:
        raise DPVError(f"no setting of the policy meets a budget of {budget:.4g} FLOPs per sample")
    return best.policy, best.param
