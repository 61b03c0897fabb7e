"""Deep supervision of every exit (thesis 6.2.2): L = sum_k w_k (CE(pi, p_k) + (v_k - z)^2),
plus, on exits with the auxiliary heads (net.aux_heads), KataGo's dense targets inside the
same w_k: w_o * mean over points of (o_k - o)^2 (final ownership, the mover's view) and
w_s * ((s_k - s) / points)^2 (final margin in points, scaled by the board's points so it is
of the value's size), each averaged over the rows whose game gave that target.

Weight decay is the optimizer's job (learner.py). The variants of Fig. 6.6/6.7 differ only in
w: "weighted" puts a larger weight on the deepest exit, "no_weight" and "multi_step" weigh
all exits 1 (multi_step changes the self-play exit, not the loss), "single_exit" trains the
deepest head alone (plain AlphaZero).
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    # per exit with aux heads (None on the others): ownership and score losses as above,
    # and the share of owned points (target != 0) whose predicted sign is right
    ownership: list[float | None] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    ownership_accuracy: list[float | None] = field(default_factory=list)


@dataclass
class AuxTargets:
    """The auxiliary targets of a batch and their loss weights (net.ownership_weight, net.score_weight)."""

    ownership: torch.Tensor  # (B, P) in {-1, 0, 1}, the mover's view
    has_ownership: torch.Tensor  # (B,) 1 where the row has an ownership target
    score: torch.Tensor  # (B,) margin in points, the mover's view
    has_score: torch.Tensor  # (B,) 1 where the row has a score target
    ownership_weight: float
    score_weight: float


def _masked_mean(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (mask * rows).sum() / mask.sum().clamp(min=1.0)


def aux_losses(out, aux: AuxTargets) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(ownership loss, score loss, ownership sign accuracy) of one exit's outputs."""
    points = aux.ownership.shape[1]
    own = _masked_mean(((out.ownership - aux.ownership) ** 2).mean(dim=1), aux.has_ownership)
    score = _masked_mean(((out.score - aux.score) / points) ** 2, aux.has_score)
    owned = (aux.ownership != 0) & (aux.has_ownership[:, None] > 0)
    right = (torch.sign(out.ownership.detach()) == aux.ownership) & owned
    accuracy = float(right.sum() / owned.sum().clamp(min=1))
    return own, score, accuracy


def deep_supervision_loss(outputs, target_policy: torch.Tensor, target_value: torch.Tensor,
                          weights: list[float], policy_weight: torch.Tensor | None = None,
                          aux: AuxTargets | None = None) -> LossParts:
    """`outputs`: one PolicyValue(policy_logits, value) per exit, as net.forward returns.
    `policy_weight` (B,) weighs each row's policy term (0: a playout-capped fast search,
    value target only); the CE is the weighted mean over the rows that carry one. `aux`:
    the ownership and score targets, used on the exits whose output carries those heads."""
    total = target_value.new_zeros(())
    policy, value, agreement = [], [], []
    ownership: list[float | None] = []
    score: list[float | None] = []
    accuracy: list[float | None] = []
    best_move = target_policy.argmax(dim=1)
    if policy_weight is None:
        policy_weight = torch.ones_like(target_value)
    has_policy = policy_weight > 0
    weight_sum = policy_weight.sum().clamp(min=1e-8)
    for out, w in zip(outputs, weights, strict=True):
        ce_rows = -(target_policy * F.log_softmax(out.policy_logits, dim=1)).sum(dim=1)
        ce = (policy_weight * ce_rows).sum() / weight_sum
        mse = F.mse_loss(out.value, target_value)
        term = ce + mse
        if aux is not None and out.ownership is not None:
            own, sc, acc = aux_losses(out, aux)
            term = term + aux.ownership_weight * own + aux.score_weight * sc
            ownership.append(float(own.detach()))
            score.append(float(sc.detach()))
            accuracy.append(acc)
        else:
            ownership.append(None)
            score.append(None)
            accuracy.append(None)
        if w:
            total = total + w * term
        policy.append(float(ce.detach()))
        value.append(float(mse.detach()))
        agree = out.policy_logits.detach().argmax(dim=1) == best_move
        agreement.append(float(agree[has_policy].float().mean()) if has_policy.any() else 0.0)
    return LossParts(total, policy, value, agreement, ownership, score, accuracy)
