"""Does early exit save time in proportion to FLOPs?

For the thesis network and the CPU default, at batch 1, 8 and 32: wall time of `forward_to(k)`
divided by `forward_to(last)`, beside the FLOPs ratio; and the staged forward with half the rows
exiting at the first exit vs all rows run to the last exit. All measured in one run.

    python benchmarks/exit_speed.py [--device cuda] [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import interleaved_medians, markdown_table  # noqa: E402
from dpv.config import GameConfig, NetConfig, load_sections  # noqa: E402
from dpv.games import make_game  # noqa: E402
from dpv.nets import build_policy_value_net  # noqa: E402


def load_net(config: str, device: str):
    cfg = load_sections(config, {"game": GameConfig, "net": NetConfig}, strict=False)
    net = build_policy_value_net(cfg["net"], make_game(cfg["game"]))
    return net.to(device).eval()


def bench(name: str, net, batches: list[int], repeats: int, device: str) -> list[list[object]]:
    table = net.flops()
    last = net.num_exits - 1
    rows = []
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for b in batches:
        x = net.example_input(b).normal_()
        half = torch.arange(b, device=x.device) < b // 2  # rows exiting at exit 0

        def run(k):
            def f():
                net.forward_to(x, k)
                sync()
            return f

        def staged():
            net.staged_forward(x, lambda k, out, rows: half[rows])
            sync()

        fns = {k: run(k) for k in range(net.num_exits)}
        fns["staged"] = staged
        with torch.inference_mode():
            t = interleaved_medians(fns, repeats=repeats)
        for k in range(last):
            flops_ratio = table.fixed(k) / table.fixed(last)
            time_ratio = t[k] / t[last]
            rows.append([name, b, f"exit {k} / exit {last}", f"{flops_ratio:.3f}", f"{time_ratio:.3f}",
                         f"{100 * (time_ratio / flops_ratio - 1):+.1f}%"])
        if b >= 2:
            n0 = int(half.sum())
            flops_ratio = (n0 * table.staged(0) + (b - n0) * table.staged(last)) / (b * table.fixed(last))
            time_ratio = t["staged"] / t[last]
            rows.append([name, b, "staged, half exit at 0 / all to last", f"{flops_ratio:.3f}",
                         f"{time_ratio:.3f}", f"{100 * (time_ratio / flops_ratio - 1):+.1f}%"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", default="1,8,32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for name, cfg in [("thesis 15x128", "configs/go9_paper.yaml"), ("cpu default 6x64", "configs/go9.yaml")]:
        rows += bench(name, load_net(cfg, args.device), batches, args.repeats, args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} repeats={args.repeats} (median times)")
    print(markdown_table(["network", "batch", "comparison", "FLOPs ratio", "time ratio", "time vs FLOPs"], rows))


if __name__ == "__main__":
    main()
