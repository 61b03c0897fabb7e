"""Exit policies: one protocol, run online (on the staged forward) and offline (on traces).

A policy sees, for the rows still running at exit k, the logits of exits 0..k (policy logits
for a policy-value net, class logits for a classifier), the legal-move mask if any, and each
row's budget fraction r; it returns which rows stop at k. Recall policies (`recall = True`)
also `select` which computed exit answers (default: the one it stopped at). Policies work on
numpy float32 so the same object gives the same decisions on a live forward and on a recorded
trace. A policy whose decision needs only the current exit may also decide on the device
(`device_decisions`, `decide_tensor`, in float64 like its numpy twin): the staged forward
then never waits for the host between stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

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


@dataclass
class TensorExitContext:
    """What a device-side decision sees at exit k: that exit's logits for the rows in the
    batch, on the network's device (earlier exits are not kept here: policies that look
    back decide on the host)."""

    exit_index: int
    num_exits: int
    logits: torch.Tensor  # (B, A) of exit k
    legal_mask: torch.Tensor | None = None  # (B, A) bool
    budget_fraction: torch.Tensor | None = None  # (B,) float64
    flops: np.ndarray | None = None

    @property
    def batch(self) -> int:
        return int(self.logits.shape[0])

    def r(self) -> torch.Tensor:
        if self.budget_fraction is None:
            return torch.zeros(self.batch, dtype=torch.float64, device=self.logits.device)
        return self.budget_fraction

    def probs(self) -> torch.Tensor:
        """masked_softmax in float64, as the numpy twin computes it."""
        z = self.logits.double()
        if self.legal_mask is not None:
            z = z.masked_fill(~self.legal_mask, -torch.inf)
        e = torch.exp(z - z.amax(dim=-1, keepdim=True))
        return e / e.sum(dim=-1, keepdim=True)


def tensor_entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(dim=-1)


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

    # True when `decide_tensor` gives `decide`'s answer on the network's device, so a staged
    # forward need not bring logits to the host between stages
    device_decisions: ClassVar[bool] = False

    def decide_tensor(self, ctx: TensorExitContext) -> torch.Tensor:
        """`decide` as a bool tensor (B,) on ctx's device (policies with device_decisions)."""
        raise NotImplementedError(f"{type(self).__name__} decides on the host (device_decisions is False)")


@dataclass(frozen=True)
class FixedExit(ExitPolicy):
    """Always stop at exit k (negative k counts from the deepest)."""

    k: int = -1

    def index(self, num_exits: int) -> int:
        return self.k % num_exits

    def decide(self, ctx: ExitContext) -> np.ndarray:
        return np.full(ctx.batch, ctx.exit_index == self.index(ctx.num_exits))

    device_decisions = True

    def decide_tensor(self, ctx: TensorExitContext) -> torch.Tensor:
        stop = ctx.exit_index == self.index(ctx.num_exits)
        return torch.full((ctx.batch,), stop, dtype=torch.bool, device=ctx.logits.device)


@dataclass(frozen=True)
class ConfidenceThreshold(ExitPolicy):
    """Stop when the max softmax probability (over legal moves) reaches tau."""

    tau: float

    def decide(self, ctx: ExitContext) -> BoolArray:
        stop: BoolArray = ctx.probs().max(axis=-1) >= self.tau
        return stop

    device_decisions = True

    def decide_tensor(self, ctx: TensorExitContext) -> torch.Tensor:
        return ctx.probs().amax(dim=-1) >= self.tau


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

    device_decisions = True

    def decide_tensor(self, ctx: TensorExitContext) -> torch.Tensor:
        return ctx.probs().amax(dim=-1) >= self.tau0 + self.alpha * ctx.r()


@dataclass(frozen=True)
class EntropyThreshold(ExitPolicy):
    """Stop when the entropy of the (legal) softmax is at most h."""

    h: float

    def decide(self, ctx: ExitContext) -> np.ndarray:
        return entropy(ctx.probs()) <= self.h

    device_decisions = True

    def decide_tensor(self, ctx: TensorExitContext) -> torch.Tensor:
        return tensor_entropy(ctx.probs()) <= self.h


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
    outputs: Any  # head output of the exit that answers each row (answer_exit), input order
    exit_index: np.ndarray  # (N,) exit each row stopped at
    answer_exit: np.ndarray  # (N,) exit whose output answers (recall policies may look back)
    exit_outputs: list[Any]  # per exit reached: head output of the rows in `exit_rows[k]`
    exit_rows: list[torch.Tensor]  # per exit reached: ids of the rows that reached it (ascending)
    logits_of: Callable[[Any], Any] = field(default=lambda out: out, repr=False)

    @property
    def rows(self) -> list[np.ndarray]:
        """Per exit, ids of the rows that reached it (host arrays)."""
        return [r.cpu().numpy() for r in self.exit_rows]

    @property
    def logits(self) -> list[np.ndarray]:
        """Per exit, the logits of the rows that reached it (host float32 arrays)."""
        return [self.logits_of(o).float().cpu().numpy() for o in self.exit_outputs]


def _history(logits: list[np.ndarray], rows_at: list[np.ndarray], k: int,
             idx: np.ndarray) -> list[np.ndarray]:
    """Logits of exits 0..k for rows `idx` (ids ascending; every one reached exit k)."""
    return [logits[j][np.searchsorted(rows_at[j], idx)] for j in range(k + 1)]


def run_online(
    net: MultiExitModel,
    x: torch.Tensor,
    policy: ExitPolicy,
    logits_of: Callable[[Any], Any] = lambda out: out,
    legal_mask: np.ndarray | None = None,
    budget_fraction: np.ndarray | None = None,
    max_exit: np.ndarray | None = None,
    flops: np.ndarray | None = None,
    keep_exited: Sequence[bool] | None = None,
) -> OnlineDecisions:
    """Apply `policy` on a multi-exit net's staged forward: the online twin of `run_offline`.

    At exit k the policy sees the same ExitContext `run_offline` builds from a trace (logits of
    exits 0..k for the rows still running), so one policy object decides alike on a live
    network and on its recorded trace; stopped rows leave the batch (or stay in it masked
    where `keep_exited[k]`: see `staged_forward`). A policy with `device_decisions` decides on
    the device from the current exit alone: no logits reach the host until the end.
    Recall policies then `select` each row's answering exit from every exit it computed, and
    `outputs` are that exit's. `logits_of` maps a head output to its logits tensor;
    `max_exit` (N,) caps each row's exit (a search that can only afford a shallow one)."""
    num_exits = net.num_exits
    dev = x.device
    r_all = None if budget_fraction is None else np.asarray(budget_fraction)
    cap = None if max_exit is None else np.asarray(max_exit, dtype=np.int64)
    stop: Callable[[int, Any, torch.Tensor], Any]
    seen: list[np.ndarray] = []  # host path: per exit, logits of the rows in the batch
    rows_at: list[np.ndarray] = []

    if policy.device_decisions:
        mask_t = None if legal_mask is None else torch.as_tensor(np.asarray(legal_mask, dtype=bool), device=dev)
        r_t = None if r_all is None else torch.as_tensor(r_all, dtype=torch.float64, device=dev)
        cap_t = None if cap is None else torch.as_tensor(cap, device=dev)

        def stop(k: int, out: Any, rows: torch.Tensor) -> torch.Tensor:
            ctx = TensorExitContext(k, num_exits, logits_of(out),
                                    None if mask_t is None else mask_t.index_select(0, rows),
                                    None if r_t is None else r_t.index_select(0, rows), flops)
            done = policy.decide_tensor(ctx)
            if cap_t is not None:
                done = done | (cap_t.index_select(0, rows) <= k)
            return done
    else:
        def stop(k: int, out: Any, rows: torch.Tensor) -> torch.Tensor:
            idx = rows.cpu().numpy()
            seen.append(logits_of(out).float().cpu().numpy())
            rows_at.append(idx)
            ctx = ExitContext(k, num_exits, _history(seen, rows_at, k, idx),
                              None if legal_mask is None else legal_mask[idx],
                              None if r_all is None else r_all[idx], flops)
            done = np.asarray(policy.decide(ctx), dtype=bool)
            if cap is not None:
                done |= cap[idx] <= k
            return torch.from_numpy(done).to(dev)

    res = net.staged_forward(x, stop, keep_exited)  # the last exit takes every row without asking
    exit_index = res.exit_index.cpu().numpy()
    if not policy.recall:  # the exit a row stopped at answers for it
        return OnlineDecisions(res.outputs, exit_index, exit_index.copy(), res.exit_outputs,
                               res.exit_rows, logits_of)
    # recall: every exit's logits come to the host once, after the forward
    logits = [logits_of(o).float().cpu().numpy() for o in res.exit_outputs]
    at = [r.cpu().numpy() for r in res.exit_rows]
    answer = exit_index.copy()
    for k in range(len(logits)):
        idx = np.flatnonzero(exit_index == k)
        if len(idx):
            ctx = ExitContext(k, num_exits, _history(logits, at, k, idx),
                              None if legal_mask is None else legal_mask[idx],
                              None if r_all is None else r_all[idx], flops)
            answer[idx] = select_answer(policy, ctx)
    if (answer > exit_index).any() or (answer < 0).any():
        raise ValueError(f"{type(policy).__name__}.select answered from an exit the row never reached")
    outputs = res.select(torch.as_tensor(answer, device=dev))
    return OnlineDecisions(outputs, exit_index, answer, res.exit_outputs, res.exit_rows, logits_of)


def make_exit_policy(mode: str, *, exit: int = -1, tau0: float = 0.6, alpha: float = 0.3) -> ExitPolicy:
    """Exit policy for a DPV-MCTS exit mode (thesis Tables 6.2/6.3)."""
    if mode in ("fixed", "fixed_budget"):
        return FixedExit(exit)
    if mode == "dynamic":
        return DynamicThreshold(tau0, alpha)
    if mode == "dynamic_static":  # "w/o dynamic threshold"
        return DynamicThreshold(tau0, 0.0)
    raise ConfigError(f"unknown exit mode {mode!r} (known: fixed, fixed_budget, dynamic, dynamic_static)")
