"""The thesis's inference experiments (Tables 6.2 and 6.3) from one command, at any scale.

    python -m dpv.experiments table6_2 --checkpoint net:connect4_dpv --n-ref 100 --games 200
    python -m dpv.experiments tune --checkpoint connect4_dpv --n-ref 100 --games 20 \
        --from-table6_2 runs/table6_2/table6_2.json
    python -m dpv.experiments table6_3 --checkpoint connect4_dpv --n-ref 100 --games 1000 \
        --from-table6_2 runs/table6_2/table6_2.json --tuned runs/tune/tune.json
    python -m dpv.experiments walltime --checkpoint connect4_dpv --n-ref 100 --games 20 \
        --tuned runs/tune/tune.json
    python -m dpv.experiments init-checkpoint --config configs/go9.yaml --out untrained.pt

Table 6.2: each shallow exit k plays the deepest exit, (a) both with n_ref simulations
("same number of simulations"), (b) exit k with the FLOPs budget n_ref x FLOPs(deepest)
("same computation budget"). Table 6.3: the dynamic exit policy, and the same policy with a
static threshold, each play the single best exit under that budget (dpv.play.single_exit:
the deepest exit when no shallow exit beats it), with the parameters `tune` chose for each
method on other games. Every match is an arena match: colours alternated, each random
opening played with both colours (paired openings). Tables are the row player's win rate
with Wilson 95% intervals, the smallest effect a cell can detect, and the thesis's 9x9
numbers beside ours, as Markdown and JSON. Every cell is resumable (dpv.play.table_cells):
a run that is stopped and started again skips the cells already complete.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from dpv.checkpoint import atomic_write_bytes
from dpv.config import GameConfig, NetConfig, load_sections
from dpv.errors import DPVError, cli_main
from dpv.play.single_exit import best_exit_for, best_single_exit, opponent_spec
from dpv.play.table_cells import CellRunner, cell_text, checkpoint_info  # noqa: F401 (API)
from dpv.play.tuning import DEFAULT_ALPHA_GRID, DEFAULT_TAU0_GRID, TUNE_SEED, tune, tuned_parameters

# Thesis ch. 6, 9x9 Go, 15 blocks with exits after blocks 6/9/12/15, 500 games per cell
THESIS_6_2 = {100: {"same_simulations": (40.0, 54.0, 52.8), "same_budget": (73.4, 70.6, 58.4)},
              200: {"same_simulations": (36.8, 47.8, 47.4), "same_budget": (67.4, 72.0, 60.2)}}
THESIS_6_3 = {100: (52.6, 46.6), 200: (53.4, 47.2)}  # dynamic, dynamic w/o dynamic threshold
SETTINGS = (("same_simulations", "Same number of simulations"),
            ("same_budget", "Same computation budgets"))


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


def detectable_effect(games: int, power: float = 0.8, level: float = 0.05) -> float:
    """The smallest departure from a 50% score that `games` games detect with this power in a
    two-sided test at this level (normal approximation, draws ignored: conservative)."""
    from scipy.stats import norm

    return float((norm.ppf(1 - level / 2) + norm.ppf(power)) * 0.5 / games ** 0.5)


def _effect_line(games: int) -> str:
    d = detectable_effect(games)
    if d >= 0.5:
        return f"With {games} games a cell cannot detect any departure from 50% (two-sided 5% test, 80% power)."
    return (f"With {games} games a cell detects a departure from 50% of "
            f"{100 * d:.1f} points or more (two-sided 5% test, 80% power).")


def table6_2(run: CellRunner, n_refs: Sequence[int]) -> dict[str, Any]:
    deepest = run.deepest
    if deepest < 1:
        raise DPVError(f"checkpoint {run.checkpoint} has one exit; Table 6.2 needs shallow exits")
    rows = []
    for n in n_refs:
        base = run.spec(mode="fixed", exit=-1, sims=n)
        for setting, label in SETTINGS:
            row: dict[str, Any] = {"n_ref": n, "setting": setting, "label": label, "exits": {}}
            for k in range(deepest):
                name = f"n{n}_{setting}_exit{k}"
                if not run.wanted(name):
                    continue
                a = (run.spec(mode="fixed", exit=k, sims=n) if setting == "same_simulations"
                     else run.spec(mode="fixed_budget", exit=k, n_ref=n))
                row["exits"][str(k)] = run.match(name, a, base)
                if run.interrupted:
                    break
            rows.append(row)
            if run.interrupted:
                break
        if run.interrupted:
            break
    best = {}
    for row in rows:  # only a complete same-budget row names the best exit
        if row["setting"] == "same_budget" and len(row["exits"]) == deepest and not run.interrupted:
            scores = {int(k): c["score"] for k, c in row["exits"].items()}
            best[str(row["n_ref"])] = best_single_exit(scores, deepest)
    head = "| Simulation | Setting | " + " | ".join(f"Exit {k}" for k in range(deepest)) + " |"
    lines = [f"Table 6.2: shallow exits against the deepest exit (exit {deepest}); win rate of the "
             f"shallow exit, Wilson 95% interval in brackets, {run.games} games per cell "
             f"(seed {run.seed}); thesis: 9x9 Go, 500 games per cell.", "",
             head, "|" + "---|" * (deepest + 2)]
    for row in rows:
        cells = [cell_text(row["exits"][str(k)]) if str(k) in row["exits"] else "-" for k in range(deepest)]
        lines.append(f"| {row['n_ref']} | {row['label']} | " + " | ".join(cells) + " |")
        thesis = THESIS_6_2.get(row["n_ref"], {}).get(row["setting"])
        if thesis is not None:
            lines.append(f"| {row['n_ref']} | thesis: {row['label'].lower()} | "
                         + " | ".join(f"{thesis[k]:.1f}%" if k < len(thesis) else "-"
                                      for k in range(deepest)) + " |")
    lines += ["", _effect_line(run.games)]
    sims = [f"exit {k}: {c['a_simulations_per_move']:.0f}" for row in rows if row["setting"] == "same_budget"
            for k, c in sorted(row["exits"].items()) if c["a_simulations_per_move"] is not None]
    if sims:
        lines.append("Simulations per move under the same budget: " + ", ".join(sims) + ".")
    for n_text, k in best.items():
        lines.append(f"Best single exit under the same budget at n_ref {n_text}: exit {k}"
                     + (" (no shallow exit beats the deepest)" if k == deepest else "") + ".")
    return {"table": "6.2", "checkpoint": run.checkpoint, "games": run.games, "seed": run.seed,
            "deepest_exit": deepest, "rows": rows, "best_exit_same_budget": best,
            "interrupted": run.interrupted, "markdown": "\n".join(lines) + "\n"}


def table6_3(run: CellRunner, n_refs: Sequence[int], best: dict[str, int],
             params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for n in n_refs:
        k = best_exit_for(best, n, run.exits, run.checkpoint)
        p = params[str(n)]
        dyn, static = p["dynamic"], p["dynamic_static"]
        opponent = opponent_spec(run.spec, k, n)
        row: dict[str, Any] = {"n_ref": n, "best_exit": k, "opponent": opponent, "parameters": p}
        for key, spec in (("dynamic", run.spec(mode="dynamic", n_ref=n, tau0=dyn["tau0"], alpha=dyn["alpha"])),
                          ("dynamic_static", run.spec(mode="dynamic_static", n_ref=n, tau0=static["tau0"]))):
            name = f"n{n}_{key}"
            if run.wanted(name) and not run.interrupted:
                row[key] = run.match(name, spec, opponent)
        rows.append(row)
        if run.interrupted:
            break
    lines = [f"Table 6.3: dynamic exit selection against the best single exit under the same budget; "
             f"win rate of the dynamic player, Wilson 95% interval in brackets, {run.games} games per "
             f"cell (seed {run.seed}); thesis: 9x9 Go, 500 games per cell.", "",
             "| Simulation Count | Best exit | Dynamic | Dynamic (w/o dynamic threshold) | "
             "Thesis dynamic | Thesis w/o |", "|---|---|---|---|---|---|"]
    for row in rows:
        dyn = cell_text(row["dynamic"]) if "dynamic" in row else "-"
        static = cell_text(row["dynamic_static"]) if "dynamic_static" in row else "-"
        t = THESIS_6_3.get(row["n_ref"])
        thesis = f"{t[0]:.1f}% | {t[1]:.1f}%" if t else "- | -"
        lines.append(f"| {row['n_ref']} | {row['best_exit']} | {dyn} | {static} | {thesis} |")
    lines += ["", _effect_line(run.games), "Parameters:"]
    for row in rows:
        p = row["parameters"]
        lines.append(f"- n_ref {row['n_ref']}: dynamic tau0={p['dynamic']['tau0']:g}, "
                     f"alpha={p['dynamic']['alpha']:g}; dynamic_static tau0={p['dynamic_static']['tau0']:g}; "
                     f"{p['source']}.")
    return {"table": "6.3", "checkpoint": run.checkpoint, "games": run.games, "seed": run.seed,
            "rows": rows, "interrupted": run.interrupted, "markdown": "\n".join(lines) + "\n"}


def _best_from(args: argparse.Namespace) -> dict[str, int]:
    if args.best_exit is not None:
        return {"*": args.best_exit}
    if args.from_table6_2:
        p = Path(args.from_table6_2)
        try:
            data = json.loads(p.read_text())
            best = {str(k): int(v) for k, v in data["best_exit_same_budget"].items()}
        except FileNotFoundError:
            raise DPVError(f"Table 6.2 results not found: {p}") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DPVError(f"{p} is not a Table 6.2 JSON (no best_exit_same_budget)") from None
        if not best:
            raise DPVError(f"{p} has no complete same-budget row yet: finish Table 6.2 first")
        return best
    raise DPVError(f"{args.command} needs the best single exit: --best-exit K or --from-table6_2 table6_2.json")


def _parameters(args: argparse.Namespace, n_refs: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Each method's parameters per n_ref: from --tuned, else --tau0/--alpha for both (said so)."""
    if args.tuned:
        tuned = tuned_parameters(args.tuned, args.seed)
        missing = [n for n in n_refs if str(n) not in tuned]
        if missing:
            raise DPVError(f"{args.tuned} has no finished tuning for n_ref {missing}")
        return tuned
    given = {"dynamic": {"tau0": args.tau0, "alpha": args.alpha}, "dynamic_static": {"tau0": args.tau0},
             "source": "not tuned: --tau0/--alpha given to both methods"}
    return {str(n): given for n in n_refs}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dpv.experiments", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("table6_2", "table6_3", "tune", "walltime"):
        t = sub.add_parser(name)
        t.add_argument("--checkpoint", required=True, help="checkpoint path or shipped name (connect4_dpv)")
        t.add_argument("--n-ref", dest="n_ref", type=int, nargs="+", default=[100],
                       help="simulation budgets of the full network (thesis: 100 200)")
        t.add_argument("--games", type=int, default=20 if name in ("tune", "walltime") else 500,
                       help="games per cell, even: each opening is played with both colours")
        t.add_argument("--out", default=None, help=f"output folder (default runs/{name})")
        t.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
        t.add_argument("--seed", type=int, default=TUNE_SEED if name == "tune" else 0,
                       help="openings' seed (tune's default differs from the tables')")
        t.add_argument("--opening-moves", type=int, default=4)
        t.add_argument("--net-options", default="", help="extra net spec options, e.g. c_puct=2,leaves=8")
        t.add_argument("--max-moves", type=int, help="game length limit (default: the checkpoint's)")
        t.add_argument("--only", nargs="+", help="play only these cells (folder names), e.g. n100_dynamic")
        t.add_argument("--no-progress", action="store_true")
        if name in ("table6_3", "tune"):
            t.add_argument("--best-exit", type=int, help="the single exit to play against")
            t.add_argument("--from-table6_2", help="table6_2.json whose best same-budget exit is used")
        if name in ("table6_3", "walltime"):
            t.add_argument("--tuned", help="tune.json: each method's tuned parameters")
            t.add_argument("--tau0", type=float, default=0.6, help="without --tuned: both methods' tau0")
            t.add_argument("--alpha", type=float, default=0.3, help="without --tuned: dynamic's alpha")
        if name == "tune":
            t.add_argument("--tau0-grid", type=float, nargs="+", default=list(DEFAULT_TAU0_GRID))
            t.add_argument("--alpha-grid", type=float, nargs="+", default=list(DEFAULT_ALPHA_GRID))
        if name == "walltime":
            t.add_argument("--seconds", type=float, nargs="+",
                           help="same wall-time budgets per move (default: n_ref x the deepest exit's latency)")
    init = sub.add_parser("init-checkpoint", help="save an untrained network for a config")
    init.add_argument("--config", default="configs/go9.yaml")
    init.add_argument("--out", required=True)
    init.add_argument("--seed", type=int, default=0)
    return p


def _check(args: argparse.Namespace) -> None:
    """Bad input fails here, before any game."""
    if args.games < 2 or args.games % 2:
        raise DPVError(f"--games must be even and >= 2 (each opening is played with both colours), "
                       f"got {args.games}")
    if args.workers < 1:
        raise DPVError(f"--workers must be >= 1, got {args.workers}")
    if args.max_moves is not None and args.max_moves < 1:
        raise DPVError(f"--max-moves must be >= 1, got {args.max_moves}")
    if any(n < 1 for n in args.n_ref):
        raise DPVError(f"--n-ref values must be >= 1, got {args.n_ref}")
    for flag, values in (("--tau0", [getattr(args, "tau0", 0.0)]), ("--tau0-grid", getattr(args, "tau0_grid", []))):
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise DPVError(f"{flag} {v} is outside [0, 1]")
    if args.command == "walltime" and (len(args.n_ref) != 1 or any(s <= 0 for s in args.seconds or [])):
        raise DPVError("walltime takes one --n-ref and --seconds values > 0")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init-checkpoint":
        print(f"wrote {untrained_checkpoint(args.config, args.out, args.seed)}")
        return 0
    _check(args)
    best = _best_from(args) if args.command in ("table6_3", "tune") else {}
    params = _parameters(args, args.n_ref) if args.command in ("table6_3", "walltime") else {}
    out = Path(args.out or f"runs/{args.command}")
    run = CellRunner(args.checkpoint, out, args.games, 1 if args.command == "walltime" else args.workers,
                     args.seed, args.opening_moves, args.net_options.strip(","), not args.no_progress,
                     args.max_moves)
    if args.only:
        run.only = set(args.only)
    if args.command == "table6_2":
        result = table6_2(run, args.n_ref)
    elif args.command == "table6_3":
        result = table6_3(run, args.n_ref, best, params)
    elif args.command == "tune":
        result = tune(run, args.n_ref, best, args.tau0_grid, args.alpha_grid)
    else:
        from dpv.play.walltime import walltime

        result = walltime(run, args.n_ref[0], params[str(args.n_ref[0])], args.seconds)
    result["cells_resumed"], result["cells_played"] = run.resumed, run.played
    md = out / f"{args.command}.md"
    atomic_write_bytes(md, result["markdown"].encode())
    atomic_write_bytes(out / f"{args.command}.json", (json.dumps(result, indent=2) + "\n").encode())
    print(result["markdown"])
    print(f"cells read back (already complete): {len(run.resumed)}, played now: {len(run.played)}")
    print(f"wrote {md} and {out / (args.command + '.json')}")
    return 130 if run.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
