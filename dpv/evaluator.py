"""What search asks of a network (the `Evaluator` protocol), and the network evaluator:
batched leaf evaluation with per-row early exit.

`BatchedEvaluator` takes a batch of positions (rows may come from different searches with
their own r), runs the staged forward, lets the exit policy stop rows at each exit, drops
stopped rows from the batch, and returns per-row policy, value, exit and FLOPs spent. A
fixed-exit policy takes the plain `forward_to(k)` path: no head before k is computed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import numpy.typing as npt
import torch

from dpv.exits import ExitPolicy, FixedExit, masked_softmax, run_online
from dpv.games.base import GameState
from dpv.nets.multi_exit import MultiExitNet

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class Evaluation:
    policy: FloatArray  # (B, A) probabilities, zero on illegal moves
    value: FloatArray  # (B,) from the view of the player to move
    exit_index: IntArray  # (B,) exit each row stopped at
    flops: FloatArray  # (B,) FLOPs charged for the row


class Evaluator(Protocol):
    """What search needs from a network (or any stand-in: uniform, rollouts).

    The attributes and the members with a body are optional capabilities with their
    defaults: an evaluator that subclasses this protocol takes them, and overrides what it
    does differently. The defaults describe one free exit that wants planes and a mask."""

    num_exits: int = 1
    wants_planes: bool = True  # observation planes of the leaves (False: planes is None)
    # a legal-move mask; False when the policy ignores it (uniform): it then gets an
    # all-True mask, and the tree renormalises priors over the legal moves anyway
    wants_legal: bool = True
    wants_states: bool = False  # the leaf states themselves (rollouts, exact solvers)

    def exit_cost(self, k: int) -> float:
        """FLOPs charged for an evaluation that stops at exit k."""
        return 0.0

    def deepest_flops(self) -> float:
        """FLOPs of one full-network evaluation (the deepest exit alone): the unit of a
        search's budget, B = n_ref * deepest_flops()."""
        return self.exit_cost(self.num_exits - 1)

    def evaluate(self, planes: FloatArray | None, legal_mask: BoolArray,
                 budget_fraction: FloatArray | None = None,
                 max_exit: IntArray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        """Rows in, rows out. `budget_fraction` (B,) is each row's search's r, `max_exit`
        (B,) the deepest exit its search can still afford; `states` only when
        `wants_states`."""
        ...


class TimedEvaluator(Evaluator):
    """Wraps an evaluator to count its calls, its rows and the seconds spent inside it."""

    def __init__(self, inner: Evaluator):
        self.inner = inner
        self.num_exits = inner.num_exits
        self.wants_planes = inner.wants_planes
        self.wants_legal = inner.wants_legal
        self.wants_states = inner.wants_states
        self.seconds = 0.0
        self.rows = 0
        self.calls = 0

    def exit_cost(self, k: int) -> float:
        return self.inner.exit_cost(k)

    def deepest_flops(self) -> float:
        return self.inner.deepest_flops()

    def evaluate(self, planes: FloatArray | None, legal_mask: BoolArray,
                 budget_fraction: FloatArray | None = None,
                 max_exit: IntArray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        t0 = time.perf_counter()
        out = self.inner.evaluate(planes, legal_mask, budget_fraction, max_exit, states)
        self.seconds += time.perf_counter() - t0
        self.rows += len(legal_mask)
        self.calls += 1
        return out


class BatchedEvaluator(Evaluator):
    def __init__(self, net: MultiExitNet, policy: ExitPolicy,
                 device: str | torch.device = "cpu"):
        self.net = net.to(device).eval()
        self.policy = policy
        self.device = torch.device(device)
        table = net.flops()
        self.fixed_flops = table.fixed_all()
        self.staged_flops = table.staged_all()
        self.num_exits = net.num_exits

    def exit_cost(self, k: int) -> float:
        """FLOPs an evaluation stopping at exit k costs under this evaluator's policy."""
        if isinstance(self.policy, FixedExit):
            return float(self.fixed_flops[k])
        return float(self.staged_flops[k])

    def deepest_flops(self) -> float:
        return float(self.fixed_flops[-1])

    def min_cost(self) -> float:
        if isinstance(self.policy, FixedExit):
            return float(self.fixed_flops[self.policy.index(self.num_exits)])
        return float(self.staged_flops[0])

    @torch.inference_mode()
    def evaluate(self, planes: FloatArray | None, legal_mask: BoolArray,
                 budget_fraction: FloatArray | None = None,
                 max_exit: IntArray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        """`max_exit` (B,) caps each row's exit, so a search near the end of its budget can
        ask for an evaluation it can afford; fixed-exit policies ignore it."""
        if planes is None:
            raise ValueError("BatchedEvaluator needs observation planes (wants_planes)")
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).to(self.device)
        n = x.shape[0]
        flops: FloatArray
        if isinstance(self.policy, FixedExit):
            k = self.policy.index(self.num_exits)
            out = self.net.forward_to(x, k)
            logits, value = out.policy_logits, out.value
            exit_index = np.full(n, k, dtype=np.int64)
            flops = np.full(n, self.fixed_flops[k])
        else:
            res = run_online(self.net, x, self.policy, _policy_logits, legal_mask,
                             budget_fraction, max_exit, self.staged_flops)
            logits, value = res.outputs.policy_logits, res.outputs.value
            exit_index = res.exit_index
            flops = self.staged_flops[exit_index]
        probs = masked_softmax(logits.float().cpu().numpy(), legal_mask).astype(np.float32)
        return Evaluation(probs, value.float().cpu().numpy(), exit_index, flops)


def _policy_logits(out: Any) -> torch.Tensor:
    logits: torch.Tensor = out.policy_logits
    return logits
