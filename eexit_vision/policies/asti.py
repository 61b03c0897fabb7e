"""ASTI look-then-leap (optimal-depth-asti.txt, Algorithm 1; formulas in DESIGN.md section 7).

Utility U(h) = max softmax of the exit head. After computing exit k (the paper's h_{t+1}) the
rule compares it with exit k-1 (h_t): when the gain U_k - U_{k-1} is below the per-layer cost
c, one more layer is not worth it, so it stops and predicts from exit k. Exit 0 has nothing to
look back at and always continues. Baselines from the paper: Static-Exit is `FixedExit(k)`,
Entropy-Exit is `EntropyThreshold(h)` (both in dpv.exits).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpv.exits import ExitContext, ExitPolicy, masked_softmax


@dataclass(frozen=True)
class LookThenLeap(ExitPolicy):
    c: float

    def decide(self, ctx: ExitContext) -> np.ndarray:
        k = ctx.exit_index
        if k == 0:
            return np.zeros(ctx.batch, dtype=bool)
        u_next = masked_softmax(ctx.logits[k], ctx.legal_mask).max(-1)
        u_now = masked_softmax(ctx.logits[k - 1], ctx.legal_mask).max(-1)
        return u_next - u_now < self.c
