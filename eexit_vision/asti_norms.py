"""ASTI regulariser check: train the ASTI residual net with and without the depth regulariser
and plot the mean residual norm ||f_t(h_t)|| per layer on the test split.

    python -m eexit_vision.asti_norms --config configs/vision_asti.yaml --out DIR [--lam 1e-4]

Writes DIR/residual_norms.png, DIR/residual_norms.md and DIR/residual_norms.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import DPVError, cli_main

from eexit_vision.config import load_vision_config
from eexit_vision.datasets import Split, load_dataset
from eexit_vision.models import ASTIResNet
from eexit_vision.checkpoints import load_classifier_payload
from eexit_vision.train import train


@torch.no_grad()
def residual_norms(net: ASTIResNet, split: Split, batch: int = 512) -> np.ndarray:
    """(T,) mean over samples of ||f_t(h_t)||_2 for each residual layer t."""
    net.eval()
    total = torch.zeros(net.num_exits)
    for i in range(0, len(split), batch):
        _, sq = net.forward_residuals(split.x[i:i + batch])
        total += torch.stack([s.sqrt().sum() for s in sq]).cpu()
    return (total / len(split)).numpy()


def plot(norms: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, n in norms.items():
        ax.plot(np.arange(1, len(n) + 1), n, marker="o", label=label)
    ax.set_xlabel("residual layer t")
    ax.set_ylabel("mean ||f_t(h_t)||  (test)")
    ax.set_title("ASTI depth regulariser")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.asti_norms", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--lam", type=float, help="regulariser weight of the 'with' run (default: the config's)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    base = load_vision_config(args.config, args.set)
    if base.model.name != "asti_resnet":
        raise DPVError("model.name: the ASTI norm study needs asti_resnet")
    lam = base.loss.lam if args.lam is None else args.lam
    if lam <= 0:
        raise DPVError(f"--lam: the 'with' run needs lambda > 0, got {lam}")
    norms, accs = {}, {}
    for label, value in ((f"without (lambda = 0)", 0.0), (f"with (lambda = {lam:g})", lam)):
        cfg = load_vision_config(args.config, [*args.set, "loss.name=asti", f"loss.lam={value}",
                                               f"train.out={out / ('lam_' + format(value, 'g'))}",
                                               "train.tensorboard=false"])
        res = train(cfg, log=lambda s: None)
        net = load_classifier_payload(res.checkpoint)[0]
        norms[label] = residual_norms(net, load_dataset(cfg.data).split("test"))
        accs[label] = res.test_accuracy
    plot(norms, out / "residual_norms.png")
    t = len(next(iter(norms.values())))
    lines = ["| run | " + " | ".join(f"t={i + 1}" for i in range(t)) + " |", "|---|" + "---:|" * t]
    for label in norms:
        lines.append(f"| {label}: mean norm | " + " | ".join(f"{v:.2f}" for v in norms[label]) + " |")
    for label in accs:
        lines.append(f"| {label}: test acc (%) | " + " | ".join(f"{100 * v:.2f}" for v in accs[label]) + " |")
    md = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "residual_norms.md", md.encode())
    atomic_write_bytes(out / "residual_norms.json", json.dumps(
        {k: {"norms": norms[k].tolist(), "test_acc": accs[k].tolist()} for k in norms}, indent=1).encode())
    print(md)
    print(f"plot: {out / 'residual_norms.png'}")


if __name__ == "__main__":
    main()
