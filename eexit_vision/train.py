"""Training job: `python -m eexit_vision.train --config configs/vision_digits.yaml [--resume]`.

Trains a multi-exit classifier with the configured loss. Each epoch ends with an atomic
checkpoint (`last.pt`) and history, so a killed run resumes where its last epoch ended and,
because batch order and augmentation are seeded per epoch, continues exactly as if it had
never stopped. TensorBoard gets per-exit loss and accuracy and the damping-neuron averages.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import NamedTuple
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import CheckpointError, DPVError, cli_main

from eexit_vision.anytime import anytime_markdown
from eexit_vision.checkpoints import load_classifier_payload, save_classifier
from eexit_vision.config import VisionConfig, load_vision_config
from eexit_vision.datasets import Dataset, Split, crop_flip, load_dataset
from eexit_vision.losses import make_loss
from eexit_vision.models import Classifier, build_model


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DPVError("train.device: cuda was asked for but no CUDA device is present")
    return torch.device(name)


class ExitStats(NamedTuple):
    accuracy: np.ndarray  # (K,)
    damping: np.ndarray | None  # (K,) mean softmax of the damping neuron, None without one


@torch.no_grad()
def exit_stats(net: Classifier, split: Split, device: torch.device, batch: int = 512) -> ExitStats:
    """Accuracy of every exit on a split and, with a damping neuron, its average (Table 4.8)."""
    was = net.training
    net.eval()
    correct = torch.zeros(net.num_exits)
    damping = torch.zeros(net.num_exits)
    for i in range(0, len(split), batch):
        x, y = split.x[i:i + batch].to(device), split.y[i:i + batch].to(device)
        for k, out in enumerate(net(x)):
            correct[k] += (net.class_logits(out).argmax(1) == y).sum().item()
            if net.extra_outputs:
                damping[k] += torch.softmax(out, -1)[:, net.num_classes].sum().item()
    net.train(was)
    n = max(1, len(split))
    return ExitStats((correct / n).numpy(), (damping / n).numpy() if net.extra_outputs else None)


@dataclass
class RunResult:
    checkpoint: Path
    history: list[dict]
    val_accuracy: np.ndarray
    test_accuracy: np.ndarray
    test_damping: np.ndarray | None  # (K,) damping-neuron average on the test split
    flops: np.ndarray  # (K,) cumulative FLOPs of stopping at each exit


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _optimizer(cfg: VisionConfig, net: Classifier):
    t = cfg.train
    if t.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=t.lr, momentum=t.momentum,
                              weight_decay=t.weight_decay, nesterov=t.momentum > 0)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs)


def train(cfg: VisionConfig, resume: bool = False, data: Dataset | None = None,
          stop_after: int | None = None, log=print) -> RunResult:
    """Run (or resume) training; `stop_after` ends this call after that many epochs (tests)."""
    t = cfg.train
    torch.set_num_threads(t.threads)
    device = select_device(t.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = t.deterministic
        torch.backends.cudnn.benchmark = not t.deterministic
    out = Path(t.out)
    ckpt_path = out / "last.pt"
    data = data or load_dataset(cfg.data)
    extra = 1 if cfg.loss.damping else 0

    torch.manual_seed(t.seed)
    net = build_model(cfg.model, data.input_shape, data.num_classes, extra).to(device)
    opt, sched = _optimizer(cfg, net)
    loss_fn = make_loss(cfg.loss, data.num_classes)
    history: list[dict] = []
    start = 0
    if resume and ckpt_path.is_file():
        loaded, saved_cfg, payload = load_classifier_payload(ckpt_path, device)
        if saved_cfg.to_dict() != cfg.to_dict():
            raise CheckpointError(f"cannot resume {ckpt_path}: it was trained with another config "
                                  f"(compare {out / 'config.yaml'})")
        net.load_state_dict(loaded.state_dict())
        opt.load_state_dict(payload["optimizer"])
        sched.load_state_dict(payload["scheduler"])
        history, start = list(payload["history"]), int(payload["epoch"]) + 1
        log(f"resumed from {ckpt_path} after epoch {start}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    writer = _writer(out) if t.tensorboard else None

    train_split, val_split = data.split("train"), data.split("val")
    flops = net.flops().staged_all()
    end = t.epochs if stop_after is None else min(t.epochs, start + stop_after)
    for epoch in range(start, end):
        net.train()
        gen = _epoch_generator(t.seed, epoch)
        order = torch.randperm(len(train_split), generator=gen)
        k = net.num_exits
        sums = {"loss": 0.0, "ce": torch.zeros(k), "correct": torch.zeros(k), "damping": torch.zeros(k)}
        seen = 0
        steps = math.ceil(len(order) / t.batch_size)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{t.epochs}", disable=not t.progress,
                   leave=False, dynamic_ncols=True)
        for step in bar:
            idx = order[step * t.batch_size:(step + 1) * t.batch_size]
            x, y = train_split.x[idx].to(device), train_split.y[idx].to(device)
            if data.augment:
                x = crop_flip(x, gen)  # on the device; the seeded CPU generator only draws offsets
            if cfg.loss.name == "asti":
                outs, sq_norms = net.forward_residuals(x)
            else:
                outs, sq_norms = net(x), None
            res = loss_fn(outs, y, sq_norms)
            if not torch.isfinite(res.total):  # fail loudly: a NaN run would checkpoint garbage
                raise DPVError(f"training diverged: loss is {res.total.item()} at epoch {epoch + 1}, "
                               f"step {step + 1} (try a lower train.lr)")
            opt.zero_grad(set_to_none=True)
            res.total.backward()
            opt.step()
            b = len(y)
            seen += b
            sums["loss"] += res.total.item() * b
            sums["ce"] += res.exit_ce.cpu() * b
            sums["correct"] += torch.tensor([(net.class_logits(o).argmax(1) == y).sum().item() for o in outs])
            if res.damping is not None:
                sums["damping"] += res.damping.cpu() * b
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}")
        sched.step()
        val_acc = exit_stats(net, val_split, device).accuracy
        row = {"epoch": epoch + 1, "loss": sums["loss"] / seen,
               "exit_ce": (sums["ce"] / seen).tolist(),
               "train_acc": (sums["correct"] / seen).tolist(), "val_acc": val_acc.tolist()}
        if cfg.loss.damping:
            row["damping_neuron"] = (sums["damping"] / seen).tolist()
        history.append(row)
        if writer is not None:
            _log_epoch(writer, row)
        save_classifier(ckpt_path, net, cfg, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        epoch=epoch, history=history, flops=flops.tolist())
        log(_epoch_line(row))
    if writer is not None:
        writer.close()

    val_acc = exit_stats(net, val_split, device).accuracy
    test = exit_stats(net, data.split("test"), device)
    final = {"val_acc": val_acc.tolist(), "test_acc": test.accuracy.tolist(), "flops": flops.tolist()}
    if test.damping is not None:
        final["test_damping_neuron"] = test.damping.tolist()
    atomic_write_bytes(out / "history.json", json.dumps({"epochs": history, "final": final}, indent=1).encode())
    return RunResult(ckpt_path, history, val_acc, test.accuracy, test.damping, flops)


def _writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(out / "tb"))


def _log_epoch(writer, row: dict) -> None:
    e = row["epoch"]
    writer.add_scalar("train/loss", row["loss"], e)
    for k, (ce, tr, va) in enumerate(zip(row["exit_ce"], row["train_acc"], row["val_acc"])):
        writer.add_scalar(f"loss/exit{k + 1}", ce, e)
        writer.add_scalar(f"train_acc/exit{k + 1}", tr, e)
        writer.add_scalar(f"val_acc/exit{k + 1}", va, e)
    for k, v in enumerate(row.get("damping_neuron", [])):
        writer.add_scalar(f"damping_neuron/exit{k + 1}", v, e)


def _epoch_line(row: dict) -> str:
    acc = " ".join(f"{a:.3f}" for a in row["val_acc"])
    line = f"epoch {row['epoch']}: loss {row['loss']:.4f}  val acc per exit {acc}"
    if "damping_neuron" in row:
        line += "  damping neuron " + " ".join(f"{v:.3f}" for v in row["damping_neuron"])
    return line


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="YAML config (default: built-in digits defaults)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one config value (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if present")
    args = ap.parse_args(argv)
    cfg = load_vision_config(args.config, args.set)
    res = train(cfg, resume=args.resume)
    print(f"checkpoint: {res.checkpoint}")
    print(anytime_markdown({"val accuracy": res.val_accuracy, "test accuracy": res.test_accuracy}, res.flops))


if __name__ == "__main__":
    main()
