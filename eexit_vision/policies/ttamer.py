"""T-Tamer (t-tamer.txt): recall-based dynamic index for a line of exits, by dynamic programming.

Model (sec. 4, app. B): the loss R_k of exit k takes values on a finite grid and follows a
Markov chain along the exits (p0 for exit 0, transition matrices between consecutive exits).
Computing exit k costs c_k. A recall policy may stop after any exit and answer with the exit of
least loss seen so far, paying min_j R_j + sum of the costs paid. Bellman (Def. 4.3):

    Phi_k(x, r) = min{ x, c_{k+1} + E[ Phi_{k+1}(min(x, R_{k+1}), R_{k+1}) | R_k = r ] },
    Phi_{K-1}(x, r) = x,

x = least loss so far, r = loss of the exit just computed. The if-stop matrix of exit k is
[x <= continuation]; the dynamic index sigma(k, r) is the largest x at which it still says
stop. With skips (app. C.3, the transitive closure of the line) the continuation also picks
the next exit j > k, paying c(k, j) and moving by the product of the transitions in between.

For early exit (app. D.2): loss of exit j = 1 - max softmax (observable at inference), and the
latency-aware total (1 - lambda) l_j + lambda sum_k c_k with c_k = FLOPs of stage k / FLOPs of
the whole network. The no-recall threshold rule (stop at the first exit with loss <= t, answer
with it) is the baseline the paper proves cannot be constant-approximate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpv.errors import DPVError
from dpv.exits import ExitContext, ExitPolicy, masked_softmax
from eexit_vision.traces import Trace


@dataclass(frozen=True)
class LossChain:
    values: np.ndarray  # (V,) loss grid, ascending
    p0: np.ndarray  # (V,) distribution of exit 0's loss
    trans: np.ndarray  # (K-1, V, V): trans[k][a, b] = P(R_{k+1} = b | R_k = a)
    costs: np.ndarray  # (K,) cost of computing exit k (c_0 is always paid)

    @property
    def num_exits(self) -> int:
        return len(self.costs)


@dataclass(frozen=True)
class DPSolution:
    phi: np.ndarray  # (K, V, V) Phi_k(x, r), x and r as grid indices
    stop: np.ndarray  # (K, V, V) bool if-stop matrices (the last exit always stops)
    expected_loss: float  # c_0 + E[Phi_0(R_0, R_0)]


def solve_recall(chain: LossChain) -> DPSolution:
    """The paper's DP (Alg. 2) over the discretised losses, vectorised over (x, r)."""
    v, k_n = chain.values, chain.num_exits
    n = len(v)
    idx = np.arange(n)
    xmin = np.minimum(idx[:, None], idx[None, :])  # grid index of min(x, b)
    phi = np.empty((k_n, n, n))
    stop = np.ones((k_n, n, n), dtype=bool)
    phi[-1] = v[:, None]
    for k in range(k_n - 2, -1, -1):
        after = phi[k + 1][xmin, idx[None, :]]  # [x, b] = Phi_{k+1}(min(x, b), b)
        cont = chain.costs[k + 1] + after @ chain.trans[k].T  # [x, r]
        stop[k] = v[:, None] <= cont
        phi[k] = np.minimum(v[:, None], cont)
    return DPSolution(phi, stop, float(chain.costs[0] + chain.p0 @ phi[0][idx, idx]))


def dynamic_index(sol: DPSolution, values: np.ndarray) -> np.ndarray:
    """(K-1, V) sigma(k, r): the largest least-loss x at which exit k still stops (-inf if none)."""
    out = np.full((sol.stop.shape[0] - 1, len(values)), -np.inf)
    for k in range(len(out)):
        for r in range(len(values)):
            xs = np.flatnonzero(sol.stop[k][:, r])
            if len(xs):
                out[k, r] = values[xs.max()]
    return out


def solve_no_recall(chain: LossChain) -> float:
    """Expected loss of the optimal no-recall stopping rule (pays the loss of the last exit)."""
    psi = chain.values.copy()
    for k in range(chain.num_exits - 2, -1, -1):
        psi = np.minimum(chain.values, chain.costs[k + 1] + chain.trans[k] @ psi)
    return float(chain.costs[0] + chain.p0 @ psi)


def threshold_loss(chain: LossChain, t: float, recall: bool = False) -> float:
    """Exact expected loss of "stop at the first exit whose loss <= t", answering with that exit
    (or, with recall, with the least loss seen)."""
    v, n = chain.values, len(chain.values)
    # mass over (x, r) of samples still running after exit k
    mass = np.zeros((n, n))
    mass[np.arange(n), np.arange(n)] = chain.p0
    total = chain.costs[0]
    for k in range(chain.num_exits):
        last = k == chain.num_exits - 1
        stops = np.ones(n, dtype=bool) if last else v <= t  # by r
        x_val = v[:, None] if recall else v[None, :]
        total += float((mass[:, stops] * np.broadcast_to(x_val, (n, n))[:, stops]).sum())
        if last:
            break
        mass = np.where(stops[None, :], 0.0, mass)
        nxt = np.zeros((n, n))
        run_r = mass.sum(axis=0)
        total += chain.costs[k + 1] * run_r.sum()
        for x in range(n):
            flow = mass[x] @ chain.trans[k]  # over b
            for b in range(n):
                nxt[min(x, b), b] += flow[b]
        mass = nxt
    return float(total)


# ---- skips: the transitive closure of the line

@dataclass(frozen=True)
class SkipSolution:
    phi: np.ndarray  # (K, V, V)
    action: np.ndarray  # (K, V, V) int: -1 stop, else the next exit to compute
    expected_loss: float


def solve_skip(values: np.ndarray, p0: np.ndarray, trans: np.ndarray, edge_cost: np.ndarray) -> SkipSolution:
    """DP of app. C.3: edge_cost[i, j] (i < j) is the cost of computing exit j right after
    exit i; exit 0 is always computed first at cost edge_cost[0, 0]."""
    k_n, n = edge_cost.shape[0], len(values)
    idx = np.arange(n)
    xmin = np.minimum(idx[:, None], idx[None, :])
    phi = np.empty((k_n, n, n))
    action = np.full((k_n, n, n), -1)
    phi[-1] = values[:, None]
    for i in range(k_n - 2, -1, -1):
        best = np.broadcast_to(values[:, None], (n, n)).copy()
        hop = np.eye(n)
        for j in range(i + 1, k_n):
            hop = hop @ trans[j - 1]  # P(R_j | R_i), skipped exits marginalised (Markov)
            cont = edge_cost[i, j] + phi[j][xmin, idx[None, :]] @ hop.T
            better = cont < best
            best = np.where(better, cont, best)
            action[i] = np.where(better, j, action[i])
        phi[i] = best
    return SkipSolution(phi, action, float(edge_cost[0, 0] + p0 @ phi[0][idx, idx]))


# ---- fitted on a trace: the exit policy

def exit_losses(logits: np.ndarray, legal_mask: np.ndarray | None = None) -> np.ndarray:
    return 1.0 - masked_softmax(logits, legal_mask).max(axis=-1)


def stage_costs(flops: np.ndarray) -> np.ndarray:
    """c_k = FLOPs added by exit k / FLOPs of the whole network."""
    f = np.asarray(flops, dtype=np.float64)
    return np.diff(np.concatenate([[0.0], f])) / f[-1]


def fit_chain(losses: np.ndarray, flops: np.ndarray, lam: float, num_bins: int,
              smoothing: float) -> tuple[LossChain, np.ndarray]:
    """Discretise (K, N) losses on quantile bins pooled over exits; estimate p0 and transitions."""
    k_n, n = losses.shape
    if n == 0:
        raise DPVError("T-Tamer: the validation trace is empty")
    qs = np.quantile(losses.ravel(), np.linspace(0, 1, num_bins + 1)[1:-1])
    edges = np.unique(qs)
    bins = np.searchsorted(edges, losses, side="right")
    nb = len(edges) + 1
    sums = np.bincount(bins.ravel(), weights=losses.ravel(), minlength=nb)
    counts = np.bincount(bins.ravel(), minlength=nb)
    centers = np.concatenate([[0.0], edges, [1.0]])
    mid = (centers[:-1] + centers[1:]) / 2
    values = np.where(counts > 0, sums / np.maximum(counts, 1), mid)
    values = np.maximum.accumulate(values)  # keep the grid ascending
    p0 = (np.bincount(bins[0], minlength=nb) + smoothing) / (n + smoothing * nb)
    trans = np.empty((k_n - 1, nb, nb))
    for k in range(k_n - 1):
        t = np.full((nb, nb), smoothing)
        np.add.at(t, (bins[k], bins[k + 1]), 1.0)
        trans[k] = t / t.sum(axis=1, keepdims=True)
    chain = LossChain((1.0 - lam) * values, p0, trans, lam * stage_costs(flops))
    return chain, edges


@dataclass(frozen=True)
class TTamer(ExitPolicy):
    """Recall exit policy: stop by the if-stop matrices, answer with the least-loss exit."""

    recall = True

    edges: np.ndarray  # (V-1,) bin edges on the loss 1 - max softmax
    stop_table: np.ndarray  # (K, V, V) bool
    lam: float

    def _bins(self, ctx: ExitContext) -> np.ndarray:
        return np.stack([np.searchsorted(self.edges, exit_losses(l, ctx.legal_mask), side="right")
                         for l in ctx.logits])  # (k+1, B)

    def decide(self, ctx: ExitContext) -> np.ndarray:
        k = ctx.exit_index
        if k >= len(self.stop_table) - 1:
            return np.ones(ctx.batch, dtype=bool)
        b = self._bins(ctx)
        return self.stop_table[k][b.min(axis=0), b[-1]]

    def select(self, ctx: ExitContext) -> np.ndarray:
        b = self._bins(ctx)
        return len(b) - 1 - b[::-1].argmin(axis=0)  # least loss; ties go to the deeper exit

    @classmethod
    def fit(cls, val: Trace, lam: float, num_bins: int = 16, smoothing: float = 0.1) -> "TTamer":
        if not 0.0 <= lam <= 1.0:
            raise DPVError(f"T-Tamer: lambda must be in [0, 1], got {lam}")
        chain, edges = fit_chain(exit_losses(val.logits), val.flops, lam, num_bins, smoothing)
        return cls(edges, solve_recall(chain).stop, lam)
