"""What search asks of a network (the `Evaluator` protocol), and the network evaluator:
batched leaf evaluation with per-row early exit.

`BatchedEvaluator` takes a batch of positions (rows may come from different searches with
their own r), runs the staged forward, lets the exit policy stop rows at each exit, drops
stopped rows from the batch, and returns per-row policy, value, exit and FLOPs spent; a
recall policy's rows answer from the exit it selects. A fixed-exit policy takes the plain
`forward_to(k)` path: no head before k is computed.

For a GPU: the exit decisions of the built-in policies stay on the device, `precision`
runs the forward under torch.autocast (bf16/fp16), `channels_last` sets the memory format,
`compaction="auto"` keeps stopped rows in the batch where measured compaction costs more
than it saves, and `compile_fixed` compiles the fixed-exit forward for padded batch shapes.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol, Sequence

import numpy as np
import numpy.typing as npt
import torch

from dpv.exits import ExitPolicy, FixedExit, masked_softmax, run_online
from dpv.games.base import GameState
from dpv.nets.compaction import CompactionPlan
from dpv.nets.multi_exit import FlopsTable, MultiExitNet, map_output

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPACTIONS = ("compact", "masked", "auto")


@dataclass
class Evaluation:
    policy: FloatArray  # (B, A) probabilities, zero on illegal moves
    value: FloatArray  # (B,) from the view of the player to move
    exit_index: IntArray  # (B,) exit each row stopped at
    flops: FloatArray  # (B,) FLOPs charged for the row
    # (B,) exit whose outputs answered (a recall policy's choice); None: exit_index
    answer_exit: IntArray | None = None


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


def exit_costs(table: FlopsTable, policy: ExitPolicy) -> FloatArray:
    """FLOPs charged per exit under `policy`: a fixed exit runs `forward_to(k)` (no earlier
    head), any other policy the staged forward (every head up to the exit)."""
    return table.fixed_all() if isinstance(policy, FixedExit) else table.staged_all()


class BatchedEvaluator(Evaluator):
    def __init__(self, net: MultiExitNet, policy: ExitPolicy,
                 device: str | torch.device = "cpu", precision: str = "fp32",
                 channels_last: bool = False, compaction: str = "compact",
                 compile_fixed: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if compaction not in COMPACTIONS:
            raise ValueError(f"compaction {compaction!r} is not one of {', '.join(COMPACTIONS)}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        if channels_last:  # convolutions in NHWC (faster on tensor cores)
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.policy = policy
        self.dtype = PRECISIONS[precision]
        self.channels_last = channels_last
        table = net.flops()
        self.fixed_flops = table.fixed_all()
        self.staged_flops = table.staged_all()
        self.costs = exit_costs(table, policy)
        self.num_exits = net.num_exits
        fixed = isinstance(policy, FixedExit)
        self.keep_exited: list[bool] | None = [True] * (net.num_exits - 1) if compaction == "masked" else None
        self.plan = CompactionPlan(net, self.autocast) if compaction == "auto" and not fixed else None
        self._compiled: Callable[[torch.Tensor], Any] | None = None
        if compile_fixed and isinstance(policy, FixedExit):
            k = policy.index(net.num_exits)
            self._compiled = torch.compile(lambda x: self.net.forward_to(x, k), dynamic=False,
                                           mode="reduce-overhead" if self.device.type == "cuda" else None)

    def autocast(self) -> ContextManager[object]:
        """The context the forward runs in: torch.autocast at `precision`, or nothing."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def exit_cost(self, k: int) -> float:
        """FLOPs an evaluation stopping at exit k costs under this evaluator's policy."""
        return float(self.costs[k])

    def deepest_flops(self) -> float:
        return float(self.fixed_flops[-1])

    def min_cost(self) -> float:
        if isinstance(self.policy, FixedExit):
            return float(self.fixed_flops[self.policy.index(self.num_exits)])
        return float(self.staged_flops[0])

    def prepare(self, planes: npt.NDArray[Any]) -> torch.Tensor:
        """Planes as the network's input: float32 on the device, in its memory format."""
        x = _to_device(planes, self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward_to(self, x: torch.Tensor, k: int) -> Any:
        """The fixed-exit forward (compiled, on padded batch shapes, with compile_fixed)."""
        if self._compiled is None:
            return self.net.forward_to(x, k)
        n = x.shape[0]
        b = CompactionPlan.bucket(n)  # few shapes: one compiled graph each
        if b > n:
            x = torch.cat([x, x.new_zeros((b - n,) + tuple(x.shape[1:]))])
        return map_output(self._compiled(x), lambda t: t[:n].clone())

    @torch.inference_mode()
    def evaluate(self, planes: FloatArray | None, legal_mask: BoolArray,
                 budget_fraction: FloatArray | None = None,
                 max_exit: IntArray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        """`max_exit` (B,) caps each row's exit, so a search near the end of its budget can
        ask for an evaluation it can afford; fixed-exit policies ignore it."""
        if planes is None:
            raise ValueError("BatchedEvaluator needs observation planes (wants_planes)")
        x = self.prepare(planes)
        n = x.shape[0]
        answer: IntArray | None = None
        with self.autocast():
            if isinstance(self.policy, FixedExit):
                k = self.policy.index(self.num_exits)
                out = self.forward_to(x, k)
                logits, value = out.policy_logits, out.value
                exit_index = np.full(n, k, dtype=np.int64)
            else:
                keep = self.plan.keep_exited(n) if self.plan is not None else self.keep_exited
                res = run_online(self.net, x, self.policy, _policy_logits, legal_mask,
                                 budget_fraction, max_exit, self.staged_flops, keep)
                logits, value = res.outputs.policy_logits, res.outputs.value
                exit_index = res.exit_index
                answer = res.answer_exit if self.policy.recall else None
                if self.plan is not None:
                    self.plan.observe(exit_index)
        probs = masked_softmax(logits.float().cpu().numpy(), legal_mask).astype(np.float32)
        flops: FloatArray = self.costs[exit_index]
        return Evaluation(probs, value.float().cpu().numpy(), exit_index, flops, answer)


def _to_device(planes: npt.NDArray[Any], device: torch.device) -> torch.Tensor:
    """Planes as float32 on `device`; 0/1 planes sent as uint8 (an inference server's) cross
    to the device at a quarter of the bytes and are converted there."""
    arr = np.ascontiguousarray(planes)
    if arr.dtype not in (np.uint8, np.bool_, np.float32):
        arr = arr.astype(np.float32)
    return torch.from_numpy(arr).to(device).float()


def _policy_logits(out: Any) -> torch.Tensor:
    logits: torch.Tensor = out.policy_logits
    return logits
