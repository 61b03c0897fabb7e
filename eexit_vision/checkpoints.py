"""Classifier checkpoints: the run's whole config, model shape facts and weights, written
atomically by dpv.checkpoint; loading rebuilds the exact model or fails with one line."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from dpv.checkpoint import load_checkpoint, save_checkpoint
from dpv.errors import CheckpointError, ConfigError

from eexit_vision.config import VisionConfig, load_vision_config
from eexit_vision.models import Classifier, build_model

KIND = "vision_classifier"


def save_classifier(path: str | Path, net: Classifier, cfg: VisionConfig, **extra: Any) -> None:
    save_checkpoint(path, {"kind": KIND, "config": cfg.to_dict(), "input_shape": list(net.input_shape),
                           "num_classes": net.num_classes, "model": net.state_dict(), **extra})


def load_classifier_payload(path: str | Path, device: str | torch.device = "cpu"):
    """-> (net on device, config, raw payload)."""
    payload = load_checkpoint(path, device)
    if payload.get("kind") != KIND:
        raise CheckpointError(f"checkpoint {path} holds a {payload.get('kind')!r} model, not a vision classifier")
    try:
        cfg = load_vision_config(payload["config"])
        shape, classes = tuple(payload["input_shape"]), int(payload["num_classes"])
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {e}") from None
    net = build_model(cfg.model, shape, classes, 1 if cfg.loss.damping else 0)
    try:
        net.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit its config ({str(e).splitlines()[0]})") from None
    return net.to(device), cfg, payload


def model_id(net: Classifier) -> str:
    """Architecture + weights fingerprint: traces of one model share it, other models differ."""
    h = hashlib.sha1(f"{net.name}:{net.input_shape}:{net.num_classes}:{net.extra_outputs}".encode())
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return f"{net.name}-{h.hexdigest()[:16]}"
