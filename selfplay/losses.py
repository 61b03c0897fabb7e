"""Deep supervision of every exit (thesis 6.2.2): L = sum_k w_k (CE(pi, p_k) + (v_k - z)^2).

Weight decay is the optimizer's job (learner.py). The variants of Fig. 6.6/6.7 differ only in
w: "weighted" puts a larger weight on the deepest exit, "no_weight" and "multi_step" weigh
all exits 1 (multi_step changes the self-play exit, not the loss), "single_exit" trains the
deepest head alone (plain AlphaZero).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


def exit_weights(variant: str, num_exits: int, deep_weight: float = 2.0) -> list[float]:
    if variant == "weighted":
        return [1.0] * (num_exits - 1) + [float(deep_weight)]
    if variant in ("no_weight", "multi_step"):
        return [1.0] * num_exits
    if variant == "single_exit":
        return [0.0] * (num_exits - 1) + [1.0]
    raise ValueError(f"unknown loss variant {variant!r}")


@dataclass
class LossParts:
    total: torch.Tensor  # scalar the optimizer minimises
    policy: list[float]  # per exit CE(pi, p_k), batch mean
    value: list[float]  # per exit (v_k - z)^2, batch mean
    agreement: list[float]  # per exit: share of rows whose argmax matches the search policy's


def deep_supervision_loss(outputs, target_policy: torch.Tensor, target_value: torch.Tensor,
                          weights: list[float], policy_weight: torch.Tensor | None = None) -> LossParts:
    """`outputs`: one PolicyValue(policy_logits, value) per exit, as net.forward returns.
    `policy_weight` (B,) weighs each row's policy term (0: a playout-capped fast search,
    value target only); the CE is the weighted mean over the rows that carry one."""
    total = target_value.new_zeros(())
    policy, value, agreement = [], [], []
    best_move = target_policy.argmax(dim=1)
    if policy_weight is None:
        policy_weight = torch.ones_like(target_value)
    has_policy = policy_weight > 0
    weight_sum = policy_weight.sum().clamp(min=1e-8)
    for out, w in zip(outputs, weights, strict=True):
        ce_rows = -(target_policy * F.log_softmax(out.policy_logits, dim=1)).sum(dim=1)
        ce = (policy_weight * ce_rows).sum() / weight_sum
        mse = F.mse_loss(out.value, target_value)
        if w:
            total = total + w * (ce + mse)
        policy.append(float(ce.detach()))
        value.append(float(mse.detach()))
        agree = out.policy_logits.detach().argmax(dim=1) == best_move
        agreement.append(float(agree[has_policy].float().mean()) if has_policy.any() else 0.0)
    return LossParts(total, policy, value, agreement)
