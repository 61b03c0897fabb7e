"""Typed config of a vision run: data, model, loss and training sections from one YAML file.

Built on dpv's config machinery, so an unknown key or a bad value names its field in one line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpv.config import check, load_sections, read_yaml, set_dotted, to_dict

DATASETS = ("digits", "fashion_mnist", "cifar10", "cifar100", "synthetic")
MODELS = ("digits_cnn", "fashion_cnn", "resnet", "asti_resnet")
LOSSES = ("sum_ce", "damping", "power_sqrt", "label_smoothing", "asti")
DAMPING_LOSSES = ("damping", "power_sqrt")  # losses whose heads carry the extra damping neuron


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"
    # CIFAR: folder holding cifar-10-batches-py/ or cifar-100-python/; fashion_mnist: the folder
    # of the IDX files ("" = Debian's /usr/share/datasets/fashion-mnist)
    root: str = ""
    seed: int = 0  # fixes the train/val/test split
    val_fraction: float = 0.15  # of the training pool
    test_fraction: float = 0.2  # digits / synthetic only: CIFAR and Fashion-MNIST have their own
    augment: bool = True  # CIFAR only: random crop (pad 4) + horizontal flip
    limit: int = 0  # keep at most this many samples per split (0 = all): smoke runs
    # synthetic Gaussian mixture, shaped as 1 x side x side images so the digits CNN fits
    num_classes: int = 10
    side: int = 8
    samples: int = 3000
    difficulty: float = 1.0  # noise std per coordinate = difficulty / 2; class means ~1 apart

    def validate(self, where: str) -> None:
        check(self.name in DATASETS, f"{where}.name",
              f"unknown dataset {self.name!r} (known: {', '.join(DATASETS)})")
        check(0 < self.val_fraction < 1, f"{where}.val_fraction", "must be in (0, 1)")
        check(0 < self.test_fraction < 1, f"{where}.test_fraction", "must be in (0, 1)")
        check(self.val_fraction + self.test_fraction < 1, f"{where}",
              "val_fraction + test_fraction must leave training data")
        check(self.limit >= 0, f"{where}.limit", "must be >= 0")
        check(self.num_classes >= 2, f"{where}.num_classes", "must be >= 2")
        check(self.side >= 4, f"{where}.side", "must be >= 4")
        check(self.samples >= 10 * self.num_classes, f"{where}.samples",
              "needs at least 10 samples per class")
        check(self.difficulty > 0, f"{where}.difficulty", "must be > 0")
        if self.name in ("cifar10", "cifar100"):
            check(bool(self.root), f"{where}.root", f"{self.name} needs the folder that holds the data")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "digits_cnn"
    width: int = 32  # channels of the first stage (later stages widen where the model does)
    blocks: int = 6  # resnet: residual blocks in all; asti_resnet: residual layers (one exit each)
    exits: tuple[int, ...] = ()  # resnet: 1-based block after which each exit sits; () = spread

    def validate(self, where: str) -> None:
        check(self.name in MODELS, f"{where}.name",
              f"unknown model {self.name!r} (known: {', '.join(MODELS)})")
        check(self.width >= 1, f"{where}.width", "must be >= 1")
        check(self.blocks >= 1, f"{where}.blocks", "must be >= 1")
        if self.exits:
            check(list(self.exits) == sorted(set(self.exits)), f"{where}.exits",
                  "positions must be strictly increasing")
            check(self.exits[0] >= 1 and self.exits[-1] == self.blocks, f"{where}.exits",
                  f"positions must lie in 1..{self.blocks} and end with the last block")


@dataclass(frozen=True)
class LossConfig:
    name: str = "sum_ce"
    weights: tuple[float, ...] = ()  # per-exit CE weights; () = all 1
    lam: float = 0.0  # lambda: damping strength (eq. 4.5 / 4.14) or ASTI depth-regulariser weight
    lam_per_exit: tuple[float, ...] = ()  # damping: lambda^(k) per exit (eq. 4.13); () = lam at every exit
    dynamic_weights: bool = False  # eq. 4.19-4.21 sample weights from the damping neuron
    alpha: float = 0.8  # dynamic weights lie in [1 - alpha, 1 + alpha]
    weight_map: str = "minmax"  # how -log F[N+1] maps onto [-alpha, alpha]: minmax | tanh (losses.py)
    smoothing: float = 0.1  # label_smoothing
    beta: float = 1.0  # ASTI: weight of the intermediate exits' CE
    p: float = 2.0  # ASTI: depth weight t^p

    def validate(self, where: str) -> None:
        check(self.name in LOSSES, f"{where}.name",
              f"unknown loss {self.name!r} (known: {', '.join(LOSSES)})")
        check(self.lam >= 0, f"{where}.lam", f"lambda must be >= 0, got {self.lam}")
        check(all(w >= 0 for w in self.weights), f"{where}.weights", "must be >= 0")
        check(all(v >= 0 for v in self.lam_per_exit), f"{where}.lam_per_exit", "every lambda must be >= 0")
        check(not self.lam_per_exit or self.name == "damping", f"{where}.lam_per_exit",
              "only the damping loss has a lambda per exit (eq. 4.13); power_sqrt has one (eq. 4.14)")
        check(self.weight_map in ("minmax", "tanh"), f"{where}.weight_map",
              f"unknown mapping {self.weight_map!r} (known: minmax, tanh)")
        check(0 <= self.alpha < 1, f"{where}.alpha", "must be in [0, 1)")
        check(0 <= self.smoothing < 1, f"{where}.smoothing", "must be in [0, 1)")
        check(self.beta >= 0, f"{where}.beta", "must be >= 0")
        check(not self.dynamic_weights or self.name in DAMPING_LOSSES, f"{where}.dynamic_weights",
              f"needs the damping neuron: use loss {' or '.join(DAMPING_LOSSES)}")

    @property
    def damping(self) -> bool:
        return self.name in DAMPING_LOSSES


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0  # initialisation and batch order
    device: str = "auto"  # auto = CUDA when present, else CPU
    threads: int = 1  # torch CPU threads
    deterministic: bool = True  # CUDA: deterministic cuDNN kernels, so a resumed run matches exactly
    out: str = "runs/vision"
    tensorboard: bool = True
    progress: bool = True

    def validate(self, where: str) -> None:
        check(self.epochs >= 1, f"{where}.epochs", "must be >= 1")
        check(self.batch_size >= 1, f"{where}.batch_size", "must be >= 1")
        check(self.optimizer in ("sgd", "adam"), f"{where}.optimizer", "must be sgd or adam")
        check(self.lr > 0, f"{where}.lr", "must be > 0")
        check(self.weight_decay >= 0, f"{where}.weight_decay", "must be >= 0")
        check(self.device in ("auto", "cpu", "cuda"), f"{where}.device", "must be auto, cpu or cuda")
        check(self.threads >= 1, f"{where}.threads", "must be >= 1")


@dataclass(frozen=True)
class VisionConfig:
    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def load_vision_config(source: str | Path | dict | None = None,
                       overrides: list[str] | tuple[str, ...] = ()) -> VisionConfig:
    """YAML path (or raw dict) plus `section.key=value` overrides -> validated config."""
    if source is None:
        data: dict = {}
    elif isinstance(source, dict):
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
    else:
        data = read_yaml(source)
    for o in overrides:
        set_dotted(data, o)
    cfg = VisionConfig(**load_sections(data, SECTIONS))
    check(not (cfg.loss.name == "asti") or cfg.model.name == "asti_resnet", "loss.name",
          "the asti loss needs model.name: asti_resnet (it penalises residual norms)")
    return cfg
