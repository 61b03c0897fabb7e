"""When a staged forward should compact its batch at an exit, chosen by measured cost.

Compacting takes the rows that stopped out of the batch with one index computation (one
host sync), so later stages run on fewer rows. Masking keeps them in the batch (no sync)
and ignores their later outputs. On a CPU the sync is free and every row saved is time
saved: compact. On a GPU at small batches a stage costs about the same for any row count
(kernel-launch bound) while the sync stalls the stream: mask. `CompactionPlan` times one
stage at the batch size used and at half of it (the time a row adds) and one compaction,
and compacts at exit k when the rows stopped by k are expected to save more than the
compaction costs. The share of rows each exit stops comes from the calls seen so far.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np
import numpy.typing as npt
import torch

from dpv.nets.multi_exit import MultiExitNet

FloatArray = npt.NDArray[np.float64]
Wrap = Callable[[], ContextManager[object]]  # the context a forward runs in (autocast)


@dataclass(frozen=True)
class StageCosts:
    """Seconds measured at one batch size."""

    batch: int
    full: FloatArray  # (K,) stage k + head k at `batch` rows
    half: FloatArray  # (K,) the same at batch // 2 rows
    compact: float  # one compaction of the hidden state at `batch` rows, sync included

    def saved(self, k: int, share_stopped: float) -> float:
        """Seconds saved in stages after exit k by removing `share_stopped` of the rows
        (linear in rows between the two batch sizes measured)."""
        per_share = 2.0 * (self.full[k + 1:] - self.half[k + 1:]).clip(min=0.0)
        return float(per_share.sum() * share_stopped)


def _timed(fn: Callable[[], object], sync: Callable[[], None], repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.inference_mode()
def measure_stage_costs(net: MultiExitNet, batch: int, repeats: int = 5,
                        wrap: Wrap = contextlib.nullcontext) -> StageCosts:
    """Time every stage (+ its head) at `batch` and `batch // 2` rows, and one compaction.
    `wrap` gives the context the forward runs in (autocast), so the times are that path's."""
    p = next(net.parameters())
    dev = p.device
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    full, half = [], []
    with wrap():
        h = net.stem(net.example_input(batch).normal_())
        for stage, head in zip(net.stages, net.heads):
            h = stage(h)
            hh = h[: max(1, batch // 2)]

            def run(t: torch.Tensor = h, s: torch.nn.Module = stage, hd: torch.nn.Module = head) -> object:
                return hd(s(t))

            def run_half(t: torch.Tensor = hh, s: torch.nn.Module = stage,
                         hd: torch.nn.Module = head) -> object:
                return hd(s(t))

            full.append(_timed(run, sync, repeats))
            half.append(_timed(run_half, sync, repeats))
        keep = torch.rand(batch, device=dev) < 0.5

        def compaction(t: torch.Tensor = h) -> object:
            idx = torch.nonzero(keep).squeeze(1)
            return t.index_select(0, idx), idx.numel()

        compact = _timed(compaction, sync, repeats)
    return StageCosts(batch, np.asarray(full), np.asarray(half), compact)


class CompactionPlan:
    """Per exit, compact or mask, for the batch sizes a caller runs (measured once per
    power-of-two bucket), from the exit shares observed so far (an exponential average)."""

    def __init__(self, net: MultiExitNet, wrap: Wrap = contextlib.nullcontext,
                 prior_share: float = 0.5, decay: float = 0.9, repeats: int = 5):
        self.net = net
        self.wrap = wrap
        self.decay = decay
        self.repeats = repeats
        k = net.num_exits
        # share of the rows that stopped at exits 0..k, for each k (cumulative)
        self.stopped_by = np.full(k, prior_share, dtype=np.float64)
        self.stopped_by[-1] = 1.0
        self.costs: dict[int, StageCosts] = {}

    @staticmethod
    def bucket(batch: int) -> int:
        return 1 << max(1, int(batch - 1).bit_length())

    def stage_costs(self, batch: int) -> StageCosts:
        b = self.bucket(batch)
        if b not in self.costs:
            self.costs[b] = measure_stage_costs(self.net, b, self.repeats, self.wrap)
        return self.costs[b]

    def keep_exited(self, batch: int) -> list[bool]:
        """For exits 0..K-2: True keeps the stopped rows in the batch (masked)."""
        c = self.stage_costs(batch)
        return [c.saved(k, float(self.stopped_by[k])) <= c.compact
                for k in range(self.net.num_exits - 1)]

    def observe(self, exit_index: npt.NDArray[np.int64]) -> None:
        """Fold one call's exits into the shares (exit_index is on the host anyway)."""
        if len(exit_index) == 0:
            return
        k = self.net.num_exits
        share = np.cumsum(np.bincount(exit_index, minlength=k)[:k]) / len(exit_index)
        self.stopped_by = self.decay * self.stopped_by + (1 - self.decay) * share
