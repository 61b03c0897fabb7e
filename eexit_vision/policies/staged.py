"""Run an exit policy online on a classifier's staged forward (dpv.exits.run_online).

One policy object gives the same decisions on a live network and on its recorded trace;
stopped rows leave the batch."""
from __future__ import annotations

import numpy as np
import torch

from dpv.exits import ExitPolicy, OnlineDecisions, run_online
from dpv.nets.multi_exit import MultiExitNet

__all__ = ["OnlineDecisions", "classify_staged"]


@torch.inference_mode()
def classify_staged(net: MultiExitNet, x: torch.Tensor, policy: ExitPolicy,
                    flops: np.ndarray | None = None) -> OnlineDecisions:
    # classifiers with extra outputs (a damping neuron) expose their class logits
    to_logits = getattr(net, "class_logits", lambda t: t)
    return run_online(net, x, policy, to_logits, flops=flops)
