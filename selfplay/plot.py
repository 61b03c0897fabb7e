"""Plot a run's per-exit losses and agreement from its TensorBoard event files.

    python -m selfplay.plot runs/go9 --out runs/go9/losses.png

Prints, per exit, the policy loss at the start and end of the run (means over the first
and last tenth of logged steps), so "every exit's policy loss falls" reads off one line each.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from dpv.errors import ConfigError, cli_main


def load_scalars(tb_dir: Path | str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = Path(tb_dir)
    if not tb_dir.is_dir():
        raise ConfigError(f"no TensorBoard folder at {tb_dir}")
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        ev = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in ev]), np.array([e.value for e in ev]))
    return out


def start_end(values: np.ndarray) -> tuple[float, float]:
    n = max(1, len(values) // 10)
    return float(values[:n].mean()), float(values[-n:].mean())


@cli_main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m selfplay.plot", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/losses.png)")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    scalars = load_scalars(run / "tb")
    exits = sorted({int(m.group(1)) for t in scalars if (m := re.match(r"loss_policy/exit(\d+)$", t))})
    if not exits:
        raise ConfigError(f"{run / 'tb'} holds no training losses yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k in exits:
        for ax, kind in zip(axes, ("loss_policy", "loss_value", "agreement")):
            steps, vals = scalars[f"{kind}/exit{k}"]
            ax.plot(steps, vals, label=f"exit {k}")
            ax.set_title(kind.replace("_", " ") + (" (with search policy)" if kind == "agreement" else ""))
            ax.set_xlabel("learner step")
        a, b = start_end(scalars[f"loss_policy/exit{k}"][1])
        va, vb = start_end(scalars[f"loss_value/exit{k}"][1])
        print(f"exit {k}: policy loss {a:.3f} -> {b:.3f}, value loss {va:.3f} -> {vb:.3f}")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    out = Path(args.out) if args.out else run / "losses.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
