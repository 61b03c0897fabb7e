"""EERO (eero-conference.txt, Algorithm 1): early exit as classification with reject option.

Calibration (`fit`):
  1. head risks R^l on a labelled validation trace; per-sample head costs B^l (the trace's
     cumulative FLOPs of stopping at head l);
  2. aggregation with exponential weights (Prop. 3.8): eps^l ∝ pi^l exp(-(R^l + mu B^l)/beta),
     prior pi^l ∝ 1/B^l, mu >= 0 the Lagrange multiplier of sum_l eps^l B^l <= budget, found
     numerically (brentq) when the budget binds;
  3. sequential rates eps_seq^l = sum_{j<=l} eps^j (eq. 8) plus the C/sqrt(N) correction
     (eq. 9), which makes early heads classify slightly more, so the budget holds on new data;
  4. per head, the empirical CDF F^l of the score on an unlabelled calibration set D_N.
Inference: stop at head l when F^l(s^l(x)) >= 1 - eps~_seq^l; the last head takes the rest.

The budget on the data served (`budget_bound`):
  * calibrated on the unlabelled scores of the very batch it serves (EERO's setting, `calib_logits`
    = that batch), the batch's average FLOPs never exceed sum_l eps^l B^l <= budget: at head l at
    least a share eps~_seq^l >= sum_{j<=l} eps^j of the batch has F^l >= 1 - eps~_seq^l (an
    empirical quantile of the batch itself), so at least that share has stopped by head l, and
    cost = B^M - sum_l (B^{l+1} - B^l) * share stopped by l;
  * calibrated on another sample (validation) of N from the same law, served a batch of n: by the
    DKW inequality (Massart's constant) on both samples and a union bound over the M-1 auxiliary
    heads, with probability >= 1 - delta the share stopped by head l falls short of
    sum_{j<=l} eps^j by at most (t - C_l/sqrt(N))^+, t = sqrt(log(4(M-1)/delta)/2N) +
    sqrt(log(4(M-1)/delta)/2n), so average FLOPs <= sum_l eps^l B^l + sum_l (B^{l+1} - B^l)
    * min(sum_{j<=l} eps^j, (t - C_l/sqrt(N))^+).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

from dpv.errors import DPVError
from dpv.exits import ExitContext, ExitPolicy
from eexit_vision.policies.offline import check_budget
from eexit_vision.policies.scores import score, tie_break
from eexit_vision.traces import Trace

NOISE_U = 1e-5  # width of the tie-breaking noise (the paper's u)


def exit_rates(risks: np.ndarray, costs: np.ndarray, budget: float, beta: float) -> tuple[np.ndarray, float]:
    """(eps, mu): the exponential-weights rates of Prop. 3.8 and the Lagrange multiplier."""
    risks, costs = np.asarray(risks, float), np.asarray(costs, float)
    check_budget(budget, costs)
    scale = costs[-1]  # work in units of the deepest head so mu has a sane range
    b, bbar = costs / scale, budget / scale
    log_prior = -np.log(b) - logsumexp(-np.log(b))

    def rates(mu: float) -> np.ndarray:
        z = log_prior - (risks + mu * b) / beta
        return np.exp(z - logsumexp(z))

    excess = lambda mu: rates(mu) @ b - bbar
    if excess(0.0) <= 0:
        return rates(0.0), 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 2.0
        if hi > 1e12:  # budget at the cheapest head: all mass there
            return np.eye(len(b))[0], np.inf
    mu = brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-12)
    while excess(mu) > 0:  # brentq's root may sit a hair on the wrong side: keep the plan within budget
        mu = min(hi, mu + max(abs(mu) * 1e-12, 1e-14))
    return rates(mu), mu / scale


def sequential_rates(eps: np.ndarray, n_calib: int, c: float | None) -> np.ndarray:
    """eps~_seq^l = sum_{j<=l} eps^j + C/sqrt(N); C defaults to eps^l (the paper's choice)."""
    corr = (eps if c is None else np.full_like(eps, c)) / np.sqrt(n_calib)
    return np.minimum(np.cumsum(eps) + corr, 1.0)


@dataclass(frozen=True)
class EERO(ExitPolicy):
    """The calibrated EERO exit rule: sorted calibration scores per head and the rates."""

    calib_scores: tuple[np.ndarray, ...]  # per head (all but the last), sorted ascending
    rates_seq: tuple[float, ...]  # eps~_seq per head
    rates: tuple[float, ...]  # eps (diagnostics: planned share of each head)
    mu: float
    score: str = "max_prob"

    def head_score(self, logits: np.ndarray, legal_mask: np.ndarray | None) -> np.ndarray:
        return score(self.score, logits, legal_mask) + tie_break(logits, NOISE_U)

    def decide(self, ctx: ExitContext) -> np.ndarray:
        k = ctx.exit_index
        if k >= len(self.calib_scores):
            return np.ones(ctx.batch, dtype=bool)
        s = self.head_score(ctx.logits[k], ctx.legal_mask)
        sorted_s = self.calib_scores[k]
        cdf = np.searchsorted(sorted_s, s, side="right") / len(sorted_s)
        return cdf >= 1.0 - self.rates_seq[k]

    def planned_flops(self, flops: np.ndarray) -> float:
        """sum_l eps^l B^l: the average FLOPs the rates plan for (<= the budget they were fitted to)."""
        return float(np.asarray(self.rates) @ np.asarray(flops, dtype=np.float64))

    def budget_bound(self, flops: np.ndarray, n_calib: int, n_served: int | None = None,
                     delta: float = 0.05) -> float:
        """Average FLOPs per sample this rule can spend on a served batch (module docstring):
        `n_served=None` means the batch is the calibration set itself (the exact plan bound);
        otherwise the bound that holds with probability >= 1 - delta for an independent batch."""
        b = np.asarray(flops, dtype=np.float64)
        planned = self.planned_flops(b)
        if n_served is None or len(self.rates_seq) == 0:
            return planned
        if not 0 < delta < 1:
            raise DPVError(f"EERO: delta must be in (0, 1), got {delta}")
        log_term = np.log(4 * len(self.rates_seq) / delta)
        t = np.sqrt(log_term / (2 * n_calib)) + np.sqrt(log_term / (2 * n_served))
        planned_share = np.cumsum(self.rates)[: len(self.rates_seq)]
        correction = np.asarray(self.rates_seq) - planned_share  # C_l / sqrt(N) (less where clipped at 1)
        shortfall = np.minimum(planned_share, np.maximum(t - correction, 0.0))
        return planned + float(np.diff(b)[: len(shortfall)] @ shortfall)

    @classmethod
    def fit(cls, val: Trace, budget: float, calib_logits: np.ndarray | None = None, beta: float = 0.04,
            c: float | None = None, score_name: str = "max_prob") -> "EERO":
        """Risks from the labelled `val`; CDFs from `calib_logits` (K, N, C), unlabelled,
        defaulting to val's own logits."""
        calib = val.logits if calib_logits is None else np.asarray(calib_logits, np.float32)
        if calib.ndim != 3 or calib.shape[1] == 0:
            raise DPVError("EERO: the calibration set is empty (need at least one unlabelled sample)")
        if calib.shape[0] != val.num_exits or calib.shape[2] != val.num_classes:
            raise DPVError(f"EERO: calibration logits {calib.shape} do not match the model's "
                           f"{val.num_exits} exits x {val.num_classes} classes")
        if beta <= 0:
            raise DPVError(f"EERO: beta must be > 0, got {beta}")
        risks = 1.0 - (val.logits.argmax(-1) == val.labels[None]).mean(axis=1)
        eps, mu = exit_rates(risks, val.flops, budget, beta)
        seq = sequential_rates(eps, calib.shape[1], c)
        probe = cls((), (), (), 0.0, score_name)
        scores = tuple(np.sort(probe.head_score(calib[k], None)) for k in range(val.num_exits - 1))
        return cls(scores, tuple(float(x) for x in seq[:-1]), tuple(float(x) for x in eps), float(mu), score_name)
