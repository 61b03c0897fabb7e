"""Run an exit policy online on a classifier's staged forward.

At each exit the policy sees the same ExitContext that `run_offline` builds from a trace
(logits of exits 0..k for the rows still running), so one policy object gives the same
decisions on a live network and on its recorded trace. Stopped rows leave the batch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dpv.exits import ExitContext, ExitPolicy, select_answer
from dpv.nets.multi_exit import MultiExitNet


@dataclass
class OnlineDecisions:
    exit_index: np.ndarray  # (N,)
    answer_exit: np.ndarray  # (N,)
    logits: list[np.ndarray]  # per exit, logits of the rows that reached it, in row order
    rows: list[np.ndarray]  # per exit, the row ids that reached it


@torch.inference_mode()
def classify_staged(net: MultiExitNet, x: torch.Tensor, policy: ExitPolicy,
                    flops: np.ndarray | None = None) -> OnlineDecisions:
    n = x.shape[0]
    # classifiers with extra outputs (a damping neuron) expose their class logits
    to_logits = getattr(net, "class_logits", lambda t: t)
    answer = np.full(n, net.num_exits - 1, dtype=np.int64)
    seen: list[np.ndarray] = []
    rows_at: list[np.ndarray] = []

    def stop(k: int, out: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
        idx = rows.cpu().numpy()
        seen.append(to_logits(out).float().cpu().numpy())
        rows_at.append(idx)
        hist = [seen[j][np.searchsorted(rows_at[j], idx)] for j in range(k + 1)]
        ctx = ExitContext(k, net.num_exits, hist, None, None, flops)
        done = np.asarray(policy.decide(ctx), dtype=bool)
        if done.any():
            sub = ExitContext(k, net.num_exits, [h[done] for h in hist], None, None, flops)
            answer[idx[done]] = select_answer(policy, sub)
        return done

    res = net.staged_forward(x, stop)  # it asks nothing at the last exit: all rows stop there
    exit_index = res.exit_index.cpu().numpy()
    last = net.num_exits - 1
    if (exit_index == last).any():
        # rows that reached the last exit: record their logits and let a recall policy choose
        idx = np.flatnonzero(exit_index == last)
        out = to_logits(res.outputs[idx]).float().cpu().numpy()
        seen.append(out)
        rows_at.append(idx)
        hist = [seen[j][np.searchsorted(rows_at[j], idx)] for j in range(last + 1)]
        answer[idx] = select_answer(policy, ExitContext(last, net.num_exits, hist, None, None, flops))
    return OnlineDecisions(exit_index, answer, seen, rows_at)
