"""Exit policies: one protocol, run online (on the staged forward) and offline (on traces).

A policy sees, for the rows still running at exit k, the logits of exits 0..k (policy logits
for a policy-value net, class logits for a classifier), the legal-move mask if any, and each
row's budget fraction r; it returns which rows stop at k. Recall policies (`recall = True`)
also `select` which computed exit answers (default: the one it stopped at). Policies work on numpy float32 so the
same object gives the same decisions on a live forward and on a recorded trace.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from dpv.errors import ConfigError
from dpv.nets.multi_exit import MultiExitModel

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class ExitContext:
    exit_index: int  # k, the exit just computed (0-based)
    num_exits: int
    logits: list[np.ndarray]  # logits of exits 0..k for the active rows, each (B, A)
    legal_mask: np.ndarray | None = None  # (B, A) bool
    budget_fraction: np.ndarray | None = None  # (B,) r = used / budget of the row's search
    flops: np.ndarray | None = None  # (K,) cumulative cost of stopping at each exit

    @property
    def batch(self) -> int:
        return int(self.logits[-1].shape[0])

    def r(self) -> np.ndarray:
        if self.budget_fraction is None:
            return np.zeros(self.batch, dtype=np.float64)
        return np.asarray(self.budget_fraction, dtype=np.float64)

    def probs(self, k: int | None = None) -> np.ndarray:
        """Softmax of exit k's logits over legal entries (eq. 6.4 takes the max of this)."""
        return masked_softmax(self.logits[self.exit_index if k is None else k], self.legal_mask)


def masked_softmax(logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    probs: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return probs


def entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h: npt.NDArray[np.float64] = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h


@runtime_checkable
class ExitPolicy(Protocol):
    """Subclass it to take the defaults: a policy whose stopping exit answers for the row."""

    # True when `select` may answer from an exit other than the one the row stopped at: the
    # runners then keep every exit's logits for it
    recall: ClassVar[bool] = False

    def decide(self, ctx: ExitContext) -> BoolArray:
        """Which active rows stop at ctx.exit_index, bool (B,)."""
        ...

    def select(self, ctx: ExitContext) -> IntArray:
        """For rows stopping at ctx.exit_index: the exit whose output answers, int (B,)."""
        return np.full(ctx.batch, ctx.exit_index, dtype=np.int64)


@dataclass(frozen=True)
class FixedExit(ExitPolicy):
    """Always stop at exit k (negative k counts from the deepest)."""

    k: int = -1

    def index(self, num_exits: int) -> int:
        return self.k % num_exits

    def decide(self, ctx: ExitContext) -> np.ndarray:
        return np.full(ctx.batch, ctx.exit_index == self.index(ctx.num_exits))


@dataclass(frozen=True)
class ConfidenceThreshold(ExitPolicy):
    """Stop when the max softmax probability (over legal moves) reaches tau."""

    tau: float

    def decide(self, ctx: ExitContext) -> BoolArray:
        stop: BoolArray = ctx.probs().max(axis=-1) >= self.tau
        return stop


@dataclass(frozen=True)
class DynamicThreshold(ExitPolicy):
    """DPV-MCTS (thesis eq. 6.4-6.6): stop when confidence >= tau0 + alpha * r.

    r grows as the search spends its budget, so late evaluations, whose values are the
    ones that decide the move, go deeper."""

    tau0: float
    alpha: float

    def thresholds(self, ctx: ExitContext) -> FloatArray:
        return self.tau0 + self.alpha * ctx.r()

    def decide(self, ctx: ExitContext) -> BoolArray:
        stop: BoolArray = ctx.probs().max(axis=-1) >= self.thresholds(ctx)
        return stop


@dataclass(frozen=True)
class EntropyThreshold(ExitPolicy):
    """Stop when the entropy of the (legal) softmax is at most h."""

    h: float

    def decide(self, ctx: ExitContext) -> np.ndarray:
        return entropy(ctx.probs()) <= self.h


@dataclass(frozen=True)
class Patience(ExitPolicy):
    """PABEE: stop once the argmax has been the same for `patience` consecutive exits."""

    patience: int

    def decide(self, ctx: ExitContext) -> np.ndarray:
        k = ctx.exit_index
        if k + 1 < self.patience:
            return np.zeros(ctx.batch, dtype=bool)
        preds = [masked_softmax(l, ctx.legal_mask).argmax(-1) for l in ctx.logits[k + 1 - self.patience: k + 1]]
        same = np.ones(ctx.batch, dtype=bool)
        for p in preds[:-1]:
            same &= p == preds[-1]
        return same


def select_answer(policy: ExitPolicy, ctx: ExitContext) -> IntArray:
    return np.asarray(policy.select(ctx), dtype=np.int64)


@dataclass
class OfflineDecisions:
    exit_index: np.ndarray  # (N,) exit each row stopped at
    answer_exit: np.ndarray  # (N,) exit whose output answers (recall policies may look back)


def run_offline(
    policy: ExitPolicy,
    exit_logits: np.ndarray | list[np.ndarray],
    legal_mask: np.ndarray | None = None,
    budget_fraction: np.ndarray | None = None,
    flops: np.ndarray | None = None,
) -> OfflineDecisions:
    """Apply `policy` to recorded per-exit logits (K, N, A), exactly as the staged forward does."""
    logits = [np.asarray(l, dtype=np.float32) for l in exit_logits]
    num_exits, n = len(logits), logits[0].shape[0]
    exit_index = np.full(n, num_exits - 1, dtype=np.int64)
    answer = np.full(n, num_exits - 1, dtype=np.int64)
    active = np.arange(n)
    for k in range(num_exits):
        ctx = ExitContext(
            k, num_exits, [l[active] for l in logits[: k + 1]],
            None if legal_mask is None else legal_mask[active],
            None if budget_fraction is None else np.asarray(budget_fraction)[active], flops)
        stop = np.ones(len(active), dtype=bool) if k == num_exits - 1 else np.asarray(policy.decide(ctx), bool)
        if stop.any():
            exit_index[active[stop]] = k
            sub = ExitContext(k, num_exits, [l[stop] for l in ctx.logits],
                              None if ctx.legal_mask is None else ctx.legal_mask[stop],
                              None if ctx.budget_fraction is None else ctx.budget_fraction[stop], flops)
            answer[active[stop]] = select_answer(policy, sub)
        active = active[~stop]
        if len(active) == 0:
            break
    return OfflineDecisions(exit_index, answer)


@dataclass
class OnlineDecisions:
    outputs: Any  # head output of the exit each row stopped at, rows in input order
    exit_index: np.ndarray  # (N,) exit each row stopped at
    answer_exit: np.ndarray  # (N,) exit whose output answers (recall policies may look back)
    logits: list[np.ndarray]  # per exit, logits of the rows that reached it
    rows: list[np.ndarray]  # per exit, ids of the rows that reached it (ascending)


def run_online(
    net: MultiExitModel,
    x: torch.Tensor,
    policy: ExitPolicy,
    logits_of: Callable[[Any], Any] = lambda out: out,
    legal_mask: np.ndarray | None = None,
    budget_fraction: np.ndarray | None = None,
    max_exit: np.ndarray | None = None,
    flops: np.ndarray | None = None,
) -> OnlineDecisions:
    """Apply `policy` on a multi-exit net's staged forward: the online twin of `run_offline`.

    At exit k the policy sees the same ExitContext `run_offline` builds from a trace (logits of
    exits 0..k for the rows still running), so one policy object decides alike on a live
    network and on its recorded trace; stopped rows leave the batch. `logits_of` maps a head
    output to its logits tensor; `max_exit` (N,) caps each row's exit (a search that can only
    afford a shallow evaluation)."""
    n = x.shape[0]
    num_exits = net.num_exits
    answer = np.full(n, num_exits - 1, dtype=np.int64)
    recall = policy.recall
    seen: list[np.ndarray] = []
    rows_at: list[np.ndarray] = []
    r_all = None if budget_fraction is None else np.asarray(budget_fraction)
    cap = None if max_exit is None else np.asarray(max_exit)

    def context(k: int, idx: np.ndarray) -> ExitContext:
        # earlier exits' logits, restricted to the rows still active now (row ids ascend)
        hist = [seen[j][np.searchsorted(rows_at[j], idx)] for j in range(k)] + [seen[k]]
        return ExitContext(k, num_exits, hist, None if legal_mask is None else legal_mask[idx],
                           None if r_all is None else r_all[idx], flops)

    def record(k: int, logits: torch.Tensor, idx: np.ndarray) -> ExitContext:
        seen.append(logits.float().cpu().numpy())
        rows_at.append(idx)
        return context(k, idx)

    def stop(k: int, out: Any, rows: torch.Tensor) -> np.ndarray:
        idx = rows.cpu().numpy()
        ctx = record(k, logits_of(out), idx)
        done = np.asarray(policy.decide(ctx), dtype=bool)
        if cap is not None:
            done |= cap[idx] <= k
        if recall and done.any():
            sub = ExitContext(k, num_exits, [h[done] for h in ctx.logits],
                              None if ctx.legal_mask is None else ctx.legal_mask[done],
                              None if ctx.budget_fraction is None else ctx.budget_fraction[done], flops)
            answer[idx[done]] = select_answer(policy, sub)
        return done

    res = net.staged_forward(x, stop)  # the last exit takes every row without asking
    exit_index = res.exit_index.cpu().numpy()
    last = num_exits - 1
    reached = np.flatnonzero(exit_index == last)
    if len(reached) and (recall or len(seen) == last):
        # record the last exit's logits (a recall policy may still answer from an earlier one)
        logits = logits_of(res.outputs)[torch.as_tensor(reached, device=res.exit_index.device)]
        ctx = record(last, logits, reached)
        if recall:
            answer[reached] = select_answer(policy, ctx)
    if not recall:  # the exit a row stopped at answers for it
        answer = exit_index.copy()
    return OnlineDecisions(res.outputs, exit_index, answer, seen, rows_at)


def make_exit_policy(mode: str, *, exit: int = -1, tau0: float = 0.6, alpha: float = 0.3) -> ExitPolicy:
    """Exit policy for a DPV-MCTS exit mode (thesis Tables 6.2/6.3)."""
    if mode in ("fixed", "fixed_budget"):
        return FixedExit(exit)
    if mode == "dynamic":
        return DynamicThreshold(tau0, alpha)
    if mode == "dynamic_static":  # "w/o dynamic threshold"
        return DynamicThreshold(tau0, 0.0)
    raise ConfigError(f"unknown exit mode {mode!r} (known: fixed, fixed_budget, dynamic, dynamic_static)")
