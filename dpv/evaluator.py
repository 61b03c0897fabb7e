"""Batched leaf evaluation with per-row early exit.

Takes a batch of positions (rows may come from different searches with their own r), runs
the staged forward, lets the exit policy stop rows at each exit, drops stopped rows from the
batch, and returns per-row policy, value, exit and FLOPs spent. A fixed-exit policy takes
the plain `forward_to(k)` path: no head before k is computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from dpv.exits import ExitPolicy, FixedExit, masked_softmax, run_online
from dpv.nets.multi_exit import MultiExitNet


@dataclass
class Evaluation:
    policy: np.ndarray  # (B, A) probabilities, zero on illegal moves
    value: np.ndarray  # (B,) from the view of the player to move
    exit_index: np.ndarray  # (B,) int
    flops: np.ndarray  # (B,) FLOPs charged for the row


class Evaluator(Protocol):
    """What search needs from a network (or any stand-in: uniform, rollouts)."""

    def evaluate(self, planes: np.ndarray, legal_mask: np.ndarray,
                 budget_fraction: np.ndarray | None = None,
                 max_exit: np.ndarray | None = None) -> Evaluation: ...


class BatchedEvaluator:
    def __init__(self, net: MultiExitNet, policy: ExitPolicy, device: str | torch.device = "cpu"):
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

    def min_cost(self) -> float:
        if isinstance(self.policy, FixedExit):
            return float(self.fixed_flops[self.policy.index(self.num_exits)])
        return float(self.staged_flops[0])

    @torch.inference_mode()
    def evaluate(self, planes: np.ndarray, legal_mask: np.ndarray,
                 budget_fraction: np.ndarray | None = None,
                 max_exit: np.ndarray | None = None) -> Evaluation:
        """`max_exit` (B,) caps each row's exit, so a search near the end of its budget can
        ask for an evaluation it can afford; fixed-exit policies ignore it."""
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).to(self.device)
        n = x.shape[0]
        if isinstance(self.policy, FixedExit):
            k = self.policy.index(self.num_exits)
            out = self.net.forward_to(x, k)
            logits, value = out.policy_logits, out.value
            exit_index = np.full(n, k, dtype=np.int64)
            flops = np.full(n, self.fixed_flops[k])
        else:
            res = run_online(self.net, x, self.policy, lambda out: out.policy_logits, legal_mask,
                             budget_fraction, max_exit, self.staged_flops)
            logits, value = res.outputs.policy_logits, res.outputs.value
            exit_index = res.exit_index
            flops = self.staged_flops[exit_index]
        probs = masked_softmax(logits.float().cpu().numpy(), legal_mask).astype(np.float32)
        return Evaluation(probs, value.float().cpu().numpy(), exit_index, flops)

