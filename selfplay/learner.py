"""The learner: one network, its optimizer, and the deep-supervision step.

A plain class (no Ray): the driver owns it, on CUDA when the machine has it. Weights leave
it as CPU state dicts so actors anywhere can load them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from dpv.nets import build_policy_value_net
from selfplay.config import RunConfig
from selfplay.losses import AuxTargets, deep_supervision_loss, exit_weights
from selfplay.replay import Batch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class StepMetrics:
    loss: float
    policy: list[float]
    value: list[float]
    agreement: list[float]
    # per exit, None where the exit has no aux heads (selfplay.losses.LossParts)
    ownership: list[float | None] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    ownership_accuracy: list[float | None] = field(default_factory=list)


def cpu_state_dict(net: torch.nn.Module) -> "OrderedDict[str, torch.Tensor]":
    return OrderedDict((k, v.detach().to("cpu", copy=True)) for k, v in net.state_dict().items())


class Learner:
    def __init__(self, cfg: RunConfig, game, device: str | torch.device | None = None):
        self.cfg = cfg
        self.device = pick_device(cfg.train.device) if device is None else torch.device(device)
        torch.manual_seed(cfg.train.seed)
        self.net = build_policy_value_net(cfg.net, game).to(self.device)
        self.weights = exit_weights(cfg.train.variant, self.net.num_exits, cfg.train.deep_weight)
        t = cfg.train
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay, nesterov=t.momentum > 0)
        self.steps = 0

    def step(self, batch: Batch) -> StepMetrics:
        self.net.train()
        x = torch.from_numpy(batch.planes).to(self.device, non_blocking=True)
        pi = torch.from_numpy(batch.policies).to(self.device, non_blocking=True)
        z = torch.from_numpy(batch.values).to(self.device, non_blocking=True)
        pw = (None if batch.policy_weights is None
              else torch.from_numpy(batch.policy_weights).to(self.device, non_blocking=True))
        parts = deep_supervision_loss(self.net(x), pi, z, self.weights, pw, self._aux_targets(batch))
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        self.optimizer.step()
        self.steps += 1
        return StepMetrics(float(parts.total.detach()), parts.policy, parts.value, parts.agreement,
                           parts.ownership, parts.score, parts.ownership_accuracy)

    def _aux_targets(self, batch: Batch) -> AuxTargets | None:
        net = self.cfg.net
        if net.aux_heads == "none" or batch.ownership is None:
            return None

        def dev(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(self.device, non_blocking=True)

        return AuxTargets(dev(batch.ownership), dev(batch.has_ownership), dev(batch.score),
                          dev(batch.has_score), net.ownership_weight, net.score_weight)

    def weights_cpu(self):
        return cpu_state_dict(self.net)

    def state_dict(self) -> dict:
        return {"model": self.weights_cpu(), "optimizer": self.optimizer.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])


def _mean_per_exit(rows: list[list[float | None]]) -> list[float | None]:
    """Per exit, the mean over steps of the values that are there (None where none is)."""
    if not rows or not rows[0]:
        return []
    out: list[float | None] = []
    for k in range(len(rows[0])):
        got = [r[k] for r in rows if r[k] is not None]
        out.append(float(np.mean(got)) if got else None)
    return out


def mean_metrics(ms: list[StepMetrics]) -> StepMetrics:
    return StepMetrics(float(np.mean([m.loss for m in ms])),
                       list(np.mean([m.policy for m in ms], axis=0)),
                       list(np.mean([m.value for m in ms], axis=0)),
                       list(np.mean([m.agreement for m in ms], axis=0)),
                       _mean_per_exit([m.ownership for m in ms]),
                       _mean_per_exit([m.score for m in ms]),
                       _mean_per_exit([m.ownership_accuracy for m in ms]))
