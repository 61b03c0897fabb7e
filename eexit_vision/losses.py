"""Training losses for multi-exit classifiers (thesis ch. 4; optimal-depth-asti.txt).

Every loss takes the list of exit outputs (B, N) or, with a damping neuron, (B, N + 1), the
labels, and for ASTI the per-layer squared residual norms, and returns a `LossOutput`.

Damping (eq. 4.5): softmax over N classes + the damping neuron (index N here, N+1 in the
thesis); per sample `-log F[y] + lambda * (-log F[N+1])`. Its gradient on the correct-label
logit is `(1 + lambda) F[y] - 1` (Proposition 1), on the damping logit
`(1 + lambda) F[N+1] - lambda` (Proposition 2), and `(1 + lambda) F[i]` on the others.

Power-sqrt (eq. 4.14): the damping terms of the K exits are joined as
`lambda * sqrt(sum_k d_k^2)`, `d_k = -log F^k[N+1]`. For sample weighting (eq. 4.21 weights a
per-exit loss L^(k)) we split that root exactly into per-exit shares
`d_k^2 / sqrt(sum_j d_j^2)`, which sum back to it, so unit weights give eq. 4.14 unchanged.

Damping strength per exit (eq. 4.13): `lam_per_exit` gives lambda^(k) for exit k; empty, every
exit takes the scalar `lam` (eq. 4.5 summed over the exits). Power-sqrt has one lambda.

Dynamic sample weights (eq. 4.19-4.21): `w = 1 + w~`, `w~_i = -log F(x_i)[N+1]` (eq. 4.20)
normalised to [-alpha, alpha], detached. The thesis does not spell out that normalisation, so
two mappings, both over the batch and all exits jointly (exits keep their relative order):
  minmax (default): the affine map of d onto [-alpha, alpha], d_min -> -alpha, d_max -> +alpha;
           w~ stays an affine function of eq. 4.20's d, as the text reads;
  tanh:    standardise d (mean 0, std 1) and take alpha * tanh(.), after the tanh that ends
           Han et al. (2022)'s weight net; an outlier cannot squeeze the others' weights.
Larger `d` (the damping neuron is quiet: the exit is not yet sure of this sample) -> larger
weight. A batch whose d are all equal gets weight 1 everywhere under either mapping.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from dpv.errors import ConfigError

from eexit_vision.config import LossConfig


class LossOutput(NamedTuple):
    total: torch.Tensor  # scalar to backpropagate
    exit_ce: torch.Tensor  # (K,) mean class cross-entropy per exit, detached
    damping: torch.Tensor | None  # (K,) mean softmax of the damping neuron per exit (Table 4.8)


def damping_terms(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: CE over the N+1 outputs, and the damping term -log F[N+1] (last output)."""
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(1, labels[:, None]).squeeze(1)
    return ce, -logp[:, -1]


def damping_loss(logits: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 4.5 for one exit, averaged over the batch."""
    ce, d = damping_terms(logits, labels)
    return (ce + lam * d).mean()


WEIGHT_MAPS = ("minmax", "tanh")


def dynamic_weights(d: torch.Tensor, alpha: float, mapping: str = "minmax") -> torch.Tensor:
    """(K, B) damping terms -> (K, B) weights in [1 - alpha, 1 + alpha], no gradient."""
    d = d.detach()
    if mapping == "minmax":
        span = d.max() - d.min()
        if span <= 0:
            return torch.ones_like(d)
        return 1.0 + alpha * (2.0 * (d - d.min()) / span - 1.0)
    if mapping == "tanh":
        z = (d - d.mean()) / d.std().clamp_min(1e-8) if d.numel() > 1 else torch.zeros_like(d)
        return 1.0 + alpha * torch.tanh(z)
    raise ConfigError(f"loss.weight_map: unknown mapping {mapping!r} (known: {', '.join(WEIGHT_MAPS)})")


def _class_ce(outs: Sequence[torch.Tensor], labels: torch.Tensor, num_classes: int,
              smoothing: float = 0.0) -> torch.Tensor:
    """(K, B) per-sample CE over the class logits only."""
    return torch.stack([F.cross_entropy(o[:, :num_classes], labels, reduction="none",
                                        label_smoothing=smoothing) for o in outs])


def _exit_weights(cfg: LossConfig, k: int, device) -> torch.Tensor:
    if not cfg.weights:
        return torch.ones(k, device=device)
    if len(cfg.weights) != k:
        raise ConfigError(f"loss.weights: {len(cfg.weights)} weights for a model with {k} exits")
    return torch.tensor(cfg.weights, dtype=torch.float32, device=device)


def exit_lambdas(cfg: LossConfig, k: int, device) -> torch.Tensor:
    """(K, 1) damping strengths lambda^(k) (eq. 4.13): `lam_per_exit`, or `lam` at every exit."""
    if not cfg.lam_per_exit:
        return torch.full((k, 1), cfg.lam, dtype=torch.float64, device=device)
    if len(cfg.lam_per_exit) != k:
        raise ConfigError(f"loss.lam_per_exit: {len(cfg.lam_per_exit)} values for a model with {k} exits")
    return torch.tensor(cfg.lam_per_exit, dtype=torch.float64, device=device)[:, None]


LossFn = Callable[..., LossOutput]


def make_loss(cfg: LossConfig, num_classes: int) -> LossFn:
    """The loss named in the config, as `fn(outs, labels, sq_norms=None) -> LossOutput`."""

    def loss(outs: Sequence[torch.Tensor], labels: torch.Tensor,
             sq_norms: Sequence[torch.Tensor] | None = None) -> LossOutput:
        k = len(outs)
        w = _exit_weights(cfg, k, labels.device)
        if cfg.name in ("sum_ce", "label_smoothing"):
            smoothing = cfg.smoothing if cfg.name == "label_smoothing" else 0.0
            ce = _class_ce(outs, labels, num_classes, smoothing)
            total = (w * ce.mean(1)).sum()
            return LossOutput(total, _class_ce(outs, labels, num_classes).mean(1).detach(), None)
        if cfg.name == "asti":
            if sq_norms is None:
                raise ConfigError("loss.name: asti needs a model that reports residual norms (asti_resnet)")
            ce = _class_ce(outs, labels, num_classes)
            depth = torch.arange(1, k + 1, dtype=torch.float32, device=labels.device) ** cfg.p
            reg = (depth * torch.stack([s.mean() for s in sq_norms])).sum()
            total = ce[-1].mean() + cfg.beta * ce[:-1].mean(1).sum() + cfg.lam * reg
            return LossOutput(total, ce.mean(1).detach(), None)
        # damping / power_sqrt: every head carries the damping neuron
        if outs[0].shape[1] != num_classes + 1:
            raise ConfigError(f"loss.name: {cfg.name} needs heads with a damping neuron "
                              f"({num_classes + 1} outputs), got {outs[0].shape[1]}")
        terms = [damping_terms(o, labels) for o in outs]
        ce = torch.stack([t[0] for t in terms])  # (K, B)
        d = torch.stack([t[1] for t in terms])  # (K, B)
        if cfg.name == "damping":
            damp = d
        else:  # power_sqrt: per-exit shares of sqrt(sum_k d_k^2)
            damp = d.pow(2) / d.pow(2).sum(0, keepdim=True).sqrt().clamp_min(1e-12)
        lam = exit_lambdas(cfg, k, labels.device).to(d) if cfg.name == "damping" else cfg.lam
        per_exit = ce + lam * damp  # L_i^(k), (K, B)
        v = dynamic_weights(d, cfg.alpha, cfg.weight_map) if cfg.dynamic_weights else torch.ones_like(d)
        total = (w * (v * per_exit).mean(1)).sum()
        with torch.no_grad():
            neuron = torch.stack([torch.softmax(o, -1)[:, -1].mean() for o in outs])
        return LossOutput(total, _class_ce(outs, labels, num_classes).mean(1).detach(), neuron)

    return loss
