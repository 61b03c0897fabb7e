"""Does early exit save time in proportion to FLOPs?

For the thesis network (15x128) and the CPU default (6x64), per batch size: wall time of
`forward_to(k)` over `forward_to(last)` beside the FLOPs ratio; and the staged forward with
half the rows exiting at the first exit (the decision a device tensor, as the built-in
policies give it) against every row run to the last exit, with stopped rows compacted out
(one row count per exit) and kept in the batch masked (no host sync). All measured in one
run, interleaved. `--precision bf16` adds the same under torch.autocast, and the accuracy
cost: largest policy / value difference from fp32 and the share of rows whose exit decision
(DPV's threshold, set so about half the rows stop at exit 0) flips.

    python benchmarks/exit_speed.py [--device cuda] [--batches 32,256,1024] [--precision fp32,bf16]

Needs torch and numpy only (no OpenSpiel: the Go networks are built from their input shape).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import interleaved_medians, markdown_table  # noqa: E402
from dpv.config import GameConfig, NetConfig, load_sections  # noqa: E402
from dpv.games.registry import game_info  # noqa: E402
from dpv.nets.policy_value import PolicyValueNet  # noqa: E402

NETS = [("thesis 15x128", "configs/go9_paper.yaml"), ("cpu default 6x64", "configs/go9.yaml")]
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# rows for one table of checks across benchmarks (--tsv): check, network, batch, setting,
# measured, reference, ratio, bar, verdict
CHECKS: list[list[object]] = []


def write_checks(path: str | None) -> None:
    if path:
        with open(path, "a") as f:
            for r in CHECKS:
                f.write("\t".join(str(c) for c in r) + "\n")


def go_net(config: str, device: str) -> PolicyValueNet:
    """The config's network for its Go board: 17 planes (AlphaGo Zero layout), N x N + pass
    actions, the shape OpenSpiel's Go adapter gives, without needing OpenSpiel."""
    cfg = load_sections(config, {"game": GameConfig, "net": NetConfig}, strict=False)
    game, n = cfg["game"], cfg["game"].board_size
    info = game_info(game.name)
    if info is None or info.board_sizes is None or not info.uses_history:  # the Go plane layout
        raise SystemExit(f"{config}: a Go config is needed here, got game {game.name!r}")
    net = PolicyValueNet(cfg["net"], 17, n, n, n * n + 1)
    return net.to(device).eval()


def autocast(device: str, precision: str):
    dtype = DTYPES[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def timing_rows(name: str, net, batches: list[int], repeats: int, device: str,
                precision: str, channels_last: bool) -> list[list[object]]:
    table = net.flops()
    last = net.num_exits - 1
    rows = []
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for b in batches:
        x = (torch.rand((b,) + net.input_shape, device=device) < 0.3).float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        half = torch.arange(b, device=x.device) < b // 2  # rows exiting at exit 0

        def run(k):
            def f():
                net.forward_to(x, k)
                sync()
            return f

        def staged(masked: bool):
            keep = [masked] * last

            def f():
                net.staged_forward(x, lambda k, out, rows: half.index_select(0, rows), keep).outputs
                sync()
            return f

        fns = {k: run(k) for k in range(net.num_exits)}
        fns["compact"] = staged(False)
        fns["masked"] = staged(True)
        with torch.inference_mode(), autocast(device, precision):
            t = interleaved_medians(fns, repeats=repeats)
        tag = f"{name} {precision}{' cl' if channels_last else ''}"
        for k in range(last):
            flops_ratio = table.fixed(k) / table.fixed(last)
            time_ratio = t[k] / t[last]
            rows.append([tag, b, f"exit {k} / exit {last}", f"{flops_ratio:.3f}", f"{time_ratio:.3f}",
                         f"{100 * (time_ratio / flops_ratio - 1):+.1f}%", f"{t[last] * 1e3:.2f}"])
        if b >= 2:
            n0 = int(half.sum())
            flops_ratio = (n0 * table.staged(0) + (b - n0) * table.staged(last)) / (b * table.fixed(last))
            for mode in ("compact", "masked"):
                time_ratio = t[mode] / t[last]
                rows.append([tag, b, f"staged ({mode}), half exit at 0 / all to last", f"{flops_ratio:.3f}",
                             f"{time_ratio:.3f}", f"{100 * (time_ratio / flops_ratio - 1):+.1f}%",
                             f"{t[mode] * 1e3:.2f}"])
                # the bar: within the FLOPs ratio + 25% of the full forward at batch >= 256
                CHECKS.append(["staged, half exit at 0", tag, b, mode, f"{time_ratio:.3f}",
                               f"{flops_ratio:.3f}", f"{time_ratio / flops_ratio:.2f}x FLOPs",
                               "<= 1.25x at batch >= 256",
                               ("PASS" if time_ratio <= 1.25 * flops_ratio else "FAIL") if b >= 256 else "-"])
    return rows


def accuracy_row(name: str, net, device: str, precision: str, batch: int = 512) -> list[object]:
    """Autocast against fp32 on the same random positions: largest probability and value
    differences, and the share of rows whose DynamicThreshold exit decision flips."""
    from dpv.evaluator import BatchedEvaluator
    from dpv.exits import DynamicThreshold, masked_softmax

    g = torch.Generator().manual_seed(0)
    planes = (torch.rand((batch,) + net.input_shape, generator=g) < 0.3).float().numpy()
    mask = np.ones((batch, net.num_actions), dtype=bool)
    with torch.inference_mode():
        conf0 = masked_softmax(net.forward_to(torch.from_numpy(planes).to(device), 0)
                               .policy_logits.float().cpu().numpy()).max(-1)
    policy = DynamicThreshold(float(np.median(conf0)), 0.0)  # about half stop at exit 0
    fp32 = BatchedEvaluator(net, policy, device).evaluate(planes, mask)
    low = BatchedEvaluator(net, policy, device, precision=precision).evaluate(planes, mask)
    same = fp32.exit_index == low.exit_index
    return [name, precision, batch, f"{np.abs(fp32.policy[same] - low.policy[same]).max():.2e}",
            f"{np.abs(fp32.value[same] - low.value[same]).max():.2e}", f"{1 - same.mean():.1%}",
            f"{(fp32.exit_index == 0).mean():.0%}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--precision", default="fp32", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--channels-last", action="store_true", help="also time channels_last")
    ap.add_argument("--nets", default="thesis,cpu", help="thesis, cpu or both (comma list)")
    ap.add_argument("--tsv", default=None, help="append the checks' rows to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precision.split(",")
    wanted = [n for n in NETS if n[0].split()[0] in args.nets.split(",")]
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()}"
    print(f"device={args.device} ({dev}) repeats={args.repeats} (median times, interleaved)")
    header = ["network", "batch", "comparison", "FLOPs ratio", "time ratio", "time vs FLOPs", "ms"]
    acc = []
    for name, cfg in wanted:  # each block printed (and its checks written) as it is done
        torch.manual_seed(0)
        net = go_net(cfg, args.device)
        for p in precisions:
            for cl in ([False, True] if args.channels_last else [False]):
                print(markdown_table(header, timing_rows(name, net, batches, args.repeats, args.device, p, cl)))
                write_checks(args.tsv)
                CHECKS.clear()
            if p != "fp32":
                torch.manual_seed(0)
                acc.append(accuracy_row(name, go_net(cfg, args.device), args.device, p))
    if acc:
        print(markdown_table(["network", "precision", "rows", "max |dp| (same exit)", "max |dv|",
                              "exit decisions flipped", "fp32 rows at exit 0"], acc))
        for a in acc:
            CHECKS.append(["autocast vs fp32", a[0], a[2], a[1], f"flipped {a[5]}", f"|dp| {a[3]}",
                           f"|dv| {a[4]}", "stated", "-"])
    write_checks(args.tsv)


if __name__ == "__main__":
    main()
