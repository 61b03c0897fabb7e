"""The thesis's inference experiments (Tables 6.2 and 6.3) from one command, at any scale.

    python -m dpv.experiments table6_2 --checkpoint ckpt/best.pt --n-ref 100 200 --games 500
    python -m dpv.experiments table6_3 --checkpoint ckpt/best.pt --n-ref 100 200 --games 500 \
        --from-table6_2 runs/exp/table6_2.json
    python -m dpv.experiments init-checkpoint --config configs/go9.yaml --out untrained.pt

Table 6.2: each shallow exit k plays the deepest exit, (a) both with n_ref simulations
("same number of simulations"), (b) exit k with the FLOPs budget n_ref x FLOPs(deepest)
("same computation budget"). Table 6.3: the dynamic exit policy, and the same policy with a
static threshold, each play the single best exit under that budget (from a Table 6.2 run, or
--best-exit). Every match is an arena match (colours alternated, random openings); tables are
win rates of the row's player with Wilson 95% intervals, as Markdown and JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from dpv.play.arena import MatchPlan, run_match
from dpv.checkpoint import atomic_write_bytes
from dpv.config import GameConfig, NetConfig, load_sections
from dpv.errors import DPVError, cli_main


def untrained_checkpoint(config: str | Path, out: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised policy-value net for a config's game and net sections."""
    import torch

    from dpv.checkpoint import save_policy_value
    from dpv.games import make_game
    from dpv.nets import build_policy_value_net

    sections = load_sections(config, {"game": GameConfig, "net": NetConfig}, strict=False)
    torch.manual_seed(seed)
    net = build_policy_value_net(sections["net"], make_game(sections["game"]))
    save_policy_value(out, net.eval(), sections["game"])
    return Path(out)


def checkpoint_info(path: str) -> tuple[GameConfig, int]:
    """(game config, number of exits) of a checkpoint; one clear line when it is unreadable."""
    from dpv.checkpoint import load_policy_value

    net, game_cfg = load_policy_value(path)
    return game_cfg, len(net.config.exits)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(res: dict) -> str:
    lo, hi = res["wilson95"]
    return f"{_pct(res['score'])} [{100 * lo:.1f}, {100 * hi:.1f}]"


class Experiment:
    """Runs arena matches for one table, each in its own folder under `out`."""

    def __init__(self, checkpoint: str, out: Path, games: int, workers: int, seed: int,
                 opening_moves: int, extra: str, progress: bool, max_moves: int | None = None):
        self.checkpoint = checkpoint
        self.game_cfg, self.exits = checkpoint_info(checkpoint)
        if max_moves is not None:  # quick runs: games end (and are area-scored) sooner
            self.game_cfg = dataclasses.replace(self.game_cfg, max_game_length=max_moves)
        self.out = out
        self.games, self.workers, self.seed = games, workers, seed
        self.opening_moves = opening_moves
        self.extra = extra  # spec options added to every net player (e.g. c_puct=2)
        self.progress = progress
        self.interrupted = False

    def spec(self, **opts) -> str:
        body = ",".join(f"{k}={v}" for k, v in opts.items())
        return f"net:{self.checkpoint},{body}" + (f",{self.extra}" if self.extra else "")

    def match(self, name: str, spec_a: str, spec_b: str) -> dict:
        plan = MatchPlan(spec_a, spec_b, self.game_cfg, self.games, True, self.opening_moves,
                         self.seed)
        run = run_match(plan, self.out / name, workers=self.workers, progress=self.progress)
        if run.stopped_by:
            raise DPVError(f"match {name} stopped: {run.stopped_by}")
        self.interrupted |= run.interrupted
        s = run.summary().to_dict()
        return {"match": name, "a": spec_a, "b": spec_b, **s["a_result"],
                "a_simulations_per_move": s["per_player"]["a"]["simulations_per_move"],
                "a_flops_per_move": s["per_player"]["a"]["flops_per_move"],
                "b_flops_per_move": s["per_player"]["b"]["flops_per_move"]}


def table6_2(exp: Experiment, n_refs: list[int]) -> dict:
    deepest = exp.exits - 1
    if deepest < 1:
        raise DPVError(f"checkpoint {exp.checkpoint} has one exit; Table 6.2 needs shallow exits")
    rows = []
    for n in n_refs:
        base = exp.spec(mode="fixed", exit=-1, sims=n)
        for setting, label in (("same_simulations", "Same number of simulations"),
                               ("same_budget", "Same computation budgets")):
            row = {"n_ref": n, "setting": setting, "label": label, "exits": {}}
            for k in range(deepest):
                a = (exp.spec(mode="fixed", exit=k, sims=n) if setting == "same_simulations"
                     else exp.spec(mode="fixed_budget", exit=k, n_ref=n))
                row["exits"][str(k)] = exp.match(f"n{n}_{setting}_exit{k}", a, base)
                if exp.interrupted:
                    break
            rows.append(row)
            if exp.interrupted:
                break
        if exp.interrupted:
            break
    best = {}
    for row in rows:
        if row["setting"] == "same_budget" and row["exits"]:
            best[str(row["n_ref"])] = int(max(row["exits"], key=lambda k: row["exits"][k]["score"]))
    head = "| Simulation | Setting | " + " | ".join(f"Exit {k}" for k in range(deepest)) + " |"
    lines = [f"Table 6.2: shallow exits against the deepest exit (exit {deepest}); win rate of the "
             f"shallow exit, Wilson 95% interval in brackets, {exp.games} games per cell.", "",
             head, "|" + "---|" * (deepest + 2)]
    for row in rows:
        cells = [_cell(row["exits"][str(k)]) if str(k) in row["exits"] else "-" for k in range(deepest)]
        lines.append(f"| {row['n_ref']} | {row['label']} | " + " | ".join(cells) + " |")
    return {"table": "6.2", "checkpoint": exp.checkpoint, "games": exp.games, "deepest_exit": deepest,
            "rows": rows, "best_exit_same_budget": best, "interrupted": exp.interrupted,
            "markdown": "\n".join(lines) + "\n"}


def table6_3(exp: Experiment, n_refs: list[int], best: dict[str, int], tau0: float, alpha: float) -> dict:
    rows = []
    for n in n_refs:
        k = best.get(str(n), best.get("*"))
        if k is None:
            raise DPVError(f"no best exit for n_ref={n}: give --best-exit or a Table 6.2 JSON that has it")
        if not 0 <= k < exp.exits:
            raise DPVError(f"--best-exit {k} is not an exit of {exp.checkpoint} (0..{exp.exits - 1})")
        opponent = exp.spec(mode="fixed_budget", exit=k, n_ref=n)
        row = {"n_ref": n, "best_exit": k, "opponent": opponent}
        row["dynamic"] = exp.match(f"n{n}_dynamic", exp.spec(mode="dynamic", n_ref=n, tau0=tau0, alpha=alpha),
                                   opponent)
        if not exp.interrupted:
            row["dynamic_static"] = exp.match(f"n{n}_dynamic_static",
                                              exp.spec(mode="dynamic_static", n_ref=n, tau0=tau0), opponent)
        rows.append(row)
        if exp.interrupted:
            break
    lines = [f"Table 6.3: dynamic exit selection against the best single exit under the same budget; "
             f"win rate of the dynamic player, Wilson 95% interval in brackets, {exp.games} games per "
             f"cell (tau0={tau0:g}, alpha={alpha:g}).", "",
             "| Simulation Count | Best exit | Dynamic | Dynamic (w/o dynamic threshold) |",
             "|---|---|---|---|"]
    for row in rows:
        static = _cell(row["dynamic_static"]) if "dynamic_static" in row else "-"
        lines.append(f"| {row['n_ref']} | {row['best_exit']} | {_cell(row['dynamic'])} | {static} |")
    return {"table": "6.3", "checkpoint": exp.checkpoint, "games": exp.games, "tau0": tau0,
            "alpha": alpha, "rows": rows, "interrupted": exp.interrupted,
            "markdown": "\n".join(lines) + "\n"}


def _best_from(args) -> dict[str, int]:
    if args.best_exit is not None:
        return {"*": args.best_exit}
    if args.from_table6_2:
        p = Path(args.from_table6_2)
        try:
            data = json.loads(p.read_text())
            return {str(k): int(v) for k, v in data["best_exit_same_budget"].items()}
        except FileNotFoundError:
            raise DPVError(f"Table 6.2 results not found: {p}") from None
        except (ValueError, KeyError, TypeError):
            raise DPVError(f"{p} is not a Table 6.2 JSON (no best_exit_same_budget)") from None
    raise DPVError("table6_3 needs the best single exit: --best-exit K or --from-table6_2 table6_2.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dpv.experiments", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("table6_2", "table6_3"):
        t = sub.add_parser(name)
        t.add_argument("--checkpoint", required=True)
        t.add_argument("--n-ref", dest="n_ref", type=int, nargs="+", default=[100],
                       help="simulation budgets of the full network (thesis: 100 200)")
        t.add_argument("--games", type=int, default=500, help="games per match (thesis: 500)")
        t.add_argument("--out", default=None, help=f"output folder (default runs/{name})")
        t.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--opening-moves", type=int, default=4)
        t.add_argument("--net-options", default="", help="extra net spec options, e.g. c_puct=2,leaves=8")
        t.add_argument("--max-moves", type=int, help="game length limit (default: the checkpoint's)")
        t.add_argument("--no-progress", action="store_true")
        if name == "table6_3":
            t.add_argument("--best-exit", type=int, help="the single exit to play against")
            t.add_argument("--from-table6_2", help="table6_2.json whose best same-budget exit is used")
            t.add_argument("--tau0", type=float, default=0.6)
            t.add_argument("--alpha", type=float, default=0.3)
    init = sub.add_parser("init-checkpoint", help="save an untrained network for a config")
    init.add_argument("--config", default="configs/go9.yaml")
    init.add_argument("--out", required=True)
    init.add_argument("--seed", type=int, default=0)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init-checkpoint":
        print(f"wrote {untrained_checkpoint(args.config, args.out, args.seed)}")
        return 0
    if args.games < 1:
        raise DPVError(f"--games must be >= 1, got {args.games}")
    if args.max_moves is not None and args.max_moves < 1:
        raise DPVError(f"--max-moves must be >= 1, got {args.max_moves}")
    if any(n < 1 for n in args.n_ref):
        raise DPVError(f"--n-ref values must be >= 1, got {args.n_ref}")
    if args.command == "table6_3":
        best = _best_from(args)  # before any game: a missing input should fail at once
        if not 0.0 <= args.tau0 <= 1.0:
            raise DPVError(f"--tau0 {args.tau0} is outside [0, 1]")
    out = Path(args.out or f"runs/{args.command}")
    exp = Experiment(args.checkpoint, out, args.games, args.workers, args.seed, args.opening_moves,
                     args.net_options.strip(","), not args.no_progress, args.max_moves)
    if args.command == "table6_2":
        result = table6_2(exp, args.n_ref)
    else:
        result = table6_3(exp, args.n_ref, best, args.tau0, args.alpha)
    md = out / f"{args.command}.md"
    atomic_write_bytes(md, result["markdown"].encode())
    atomic_write_bytes(out / f"{args.command}.json", (json.dumps(result, indent=2) + "\n").encode())
    print(result["markdown"])
    print(f"wrote {md} and {out / (args.command + '.json')}")
    return 130 if exp.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
