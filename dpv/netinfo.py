"""Print a multi-exit policy-value network's exit table: position, parameters, FLOPs.

    python -m dpv.netinfo --config configs/go9_paper.yaml [--json]
    python -m dpv.netinfo --checkpoint runs/go9/best.pt
"""
from __future__ import annotations

import argparse
import json

from dpv.config import GameConfig, NetConfig, load_sections
from dpv.errors import DPVError, cli_main
from dpv.games import make_game
from dpv.nets import build_policy_value_net


def exit_table(net) -> list[dict]:
    table = net.flops()
    fixed = table.fixed_all()
    params = net.exit_params()
    return [
        {"exit": k, "block": int(b), "params": int(params[k]), "flops": float(fixed[k]),
         "staged_flops": float(table.staged(k)), "relative": float(fixed[k] / fixed[-1])}
        for k, b in enumerate(net.exit_blocks)
    ]


def format_table(rows: list[dict]) -> str:
    lines = [f"{'exit':>4}  {'block':>5}  {'params':>10}  {'FLOPs':>10}  {'relative':>8}"]
    for r in rows:
        lines.append(f"{r['exit']:>4}  {r['block']:>5}  {r['params']:>10,}  {r['flops']:>10.3e}  "
                     f"{100 * r['relative']:>7.1f}%")
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m dpv.netinfo", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="YAML config with game and net sections")
    src.add_argument("--checkpoint", help="policy-value checkpoint")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    if args.config:
        cfg = load_sections(args.config, {"game": GameConfig, "net": NetConfig}, strict=False)
        game_cfg = cfg["game"]
        net = build_policy_value_net(cfg["net"], make_game(game_cfg))
    else:
        from dpv.checkpoint import load_policy_value
        net, game_cfg = load_policy_value(args.checkpoint)
    rows = exit_table(net)
    c, h, w = net.input_shape
    if args.json:
        print(json.dumps({"game": game_cfg.name, "board": [h, w], "planes": c, "exits": rows}, indent=2))
    else:
        print(f"{game_cfg.name} {h}x{w}, {c} input planes, {net.config.blocks} blocks x "
              f"{net.config.channels} channels")
        print(format_table(rows))


if __name__ == "__main__":
    main()
