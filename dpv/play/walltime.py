"""`python -m dpv.experiments walltime`: are saved FLOPs saved seconds? (issue 18, item 4)

1. Latency table: for each exit, the seconds per evaluation of a fixed-exit search of
   `sims` simulations (tree work and batching included: what a move costs), the median over
   positions from random openings, and the network alone on one batch of leaves; one
   torch thread, in this process.
2. Each mode at the same FLOPs budget (n_ref x FLOPs(deepest)) plays the deepest exit
   (n_ref simulations) in one process with one thread: its mean wall time per move beside
   its FLOPs and simulations per move.
3. Same wall-time budget: s seconds per move (default n_ref x the deepest exit's latency:
   what the deepest exit's n_ref simulations take). The deepest exit gets s / latency
   simulations; the dynamic mode the FLOPs budget s / max_k(latency_k / FLOPs_k), the rule
   of dpv.gtp's game clock (any mix of exits fits in s), given as n_ref = B / FLOPs(deepest).
   They play a match; both sides' measured seconds per move are written beside the score.
Seconds depend on the machine and its load: read them on a machine that runs nothing else.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import numpy as np

from dpv.games.base import GameState
from dpv.play.table_cells import CellRunner, cell_text

LATENCY_SIMS = 64
LATENCY_POSITIONS = 8


def _positions(runner: CellRunner, count: int) -> list[GameState]:
    from dpv.games import make_game
    from dpv.play.match import random_opening

    game = make_game(runner.game_cfg)
    rng = np.random.default_rng([runner.seed, 7])
    states: list[GameState] = []
    while len(states) < count:
        state = game.new_state()
        for a in random_opening(game, int(rng.integers(0, 9)), rng):
            state.apply(a)
        if not state.is_terminal():
            states.append(state)
    return states


def latency_table(runner: CellRunner, sims: int = LATENCY_SIMS,
                  positions: int = LATENCY_POSITIONS) -> dict[str, Any]:
    """Per exit: seconds per evaluation in a fixed-exit search, and of the network alone."""
    import torch

    from dpv.players.net_player import NetPlayer
    from dpv.players.spec import make_player

    torch.set_num_threads(1)
    states = _positions(runner, positions)
    rows = []
    for k in range(runner.exits):
        player = make_player(runner.spec(mode="fixed", exit=k, sims=sims), runner.game_cfg)
        assert isinstance(player, NetPlayer)  # a net: spec always builds one
        ev = player.evaluator
        player.mcts.search(states[0])  # warm-up: first calls allocate
        per_eval = []
        for st in states:
            player.reset()
            t0 = time.perf_counter()
            r = player.mcts.search(st)
            per_eval.append((time.perf_counter() - t0) / max(r.simulations, 1))
        batch = player.cfg.leaves_per_call
        planes = np.stack([states[i % len(states)].observation() for i in range(batch)]).astype(np.float32)
        mask = np.ones((batch, player.game.num_actions), dtype=np.bool_)
        net_s = []
        for _ in range(5):
            t0 = time.perf_counter()
            ev.evaluate(planes, mask)
            net_s.append((time.perf_counter() - t0) / batch)
        rows.append({"exit": k, "flops": float(ev.exit_cost(k)),
                     "seconds_per_evaluation": statistics.median(per_eval),
                     "network_seconds_per_row": statistics.median(net_s[1:]), "batch": batch})
    return {"sims": sims, "positions": len(states), "threads": 1, "rows": rows}


def seconds_per_flop(latency: dict[str, Any]) -> float:
    """The slowest exit's seconds per FLOP: a FLOPs budget of s / this fits in s seconds
    whatever mix of exits a dynamic search picks (dpv.gtp's clock rule)."""
    return max(r["seconds_per_evaluation"] / r["flops"] for r in latency["rows"])


def same_time_budget(latency: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What `seconds` per move buys: the deepest exit's simulations and the dynamic mode's
    FLOPs budget (as n_ref, in deepest-exit evaluations)."""
    deep = latency["rows"][-1]
    sims = max(1, int(seconds / deep["seconds_per_evaluation"]))
    budget = seconds / seconds_per_flop(latency)
    return {"seconds": seconds, "deepest_sims": sims, "dynamic_budget_flops": budget,
            "dynamic_n_ref": max(1, round(budget / deep["flops"]))}


def walltime(runner: CellRunner, n_ref: int, params: dict[str, Any],
             seconds: Sequence[float] | None = None, latency_sims: int = LATENCY_SIMS) -> dict[str, Any]:
    latency = latency_table(runner, latency_sims)
    deepest = runner.deepest
    base = runner.spec(mode="fixed", exit=-1, sims=n_ref)
    dyn, static = params["dynamic"], params["dynamic_static"]
    modes = [(f"fixed_budget exit {k}", f"wt_n{n_ref}_fixed_budget_exit{k}",
              runner.spec(mode="fixed_budget", exit=k, n_ref=n_ref)) for k in range(deepest)]
    modes += [("dynamic_static", f"wt_n{n_ref}_dynamic_static",
               runner.spec(mode="dynamic_static", n_ref=n_ref, tau0=static["tau0"])),
              ("dynamic", f"wt_n{n_ref}_dynamic",
               runner.spec(mode="dynamic", n_ref=n_ref, tau0=dyn["tau0"], alpha=dyn["alpha"]))]
    same_flops = []
    for label, name, spec in modes:
        if runner.interrupted:
            break
        if runner.wanted(name):
            same_flops.append({"mode": label, **runner.match(name, spec, base)})
    budgets = [same_time_budget(latency, s) for s in (
        seconds or [n_ref * latency["rows"][-1]["seconds_per_evaluation"]])]
    same_time = []
    for b in budgets:
        if runner.interrupted:
            break
        name = f"wt_{b['seconds']:.4g}s_dynamic_vs_deepest".replace(".", "p")
        if runner.wanted(name):
            res = runner.match(name, runner.spec(mode="dynamic", n_ref=b["dynamic_n_ref"], tau0=dyn["tau0"],
                                                 alpha=dyn["alpha"]),
                               runner.spec(mode="fixed", exit=-1, sims=b["deepest_sims"]))
            same_time.append({**b, **res})
    return {"kind": "walltime", "checkpoint": runner.checkpoint, "n_ref": n_ref, "games": runner.games,
            "latency": latency, "same_flops": same_flops, "same_time": same_time,
            "parameters": params, "interrupted": runner.interrupted,
            "markdown": walltime_markdown(latency, same_flops, same_time, n_ref, runner.games)}


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.1f}"


def walltime_markdown(latency: dict[str, Any], same_flops: list[dict[str, Any]],
                      same_time: list[dict[str, Any]], n_ref: int, games: int) -> str:
    lines = [f"Per-exit latency (1 torch thread; fixed-exit search of {latency['sims']} simulations, "
             f"median over {latency['positions']} positions; network alone on a batch of "
             f"{latency['rows'][0]['batch']} rows):", "",
             "| Exit | FLOPs | ms per evaluation (search) | ms per row (network) | ns per FLOP (search) |",
             "|---|---|---|---|---|"]
    for r in latency["rows"]:
        lines.append(f"| {r['exit']} | {r['flops']:.3g} | {1000 * r['seconds_per_evaluation']:.3f} | "
                     f"{1000 * r['network_seconds_per_row']:.3f} | "
                     f"{1e9 * r['seconds_per_evaluation'] / r['flops']:.2f} |")
    lines += ["", f"Same FLOPs budget (n_ref {n_ref}), each mode against the deepest exit with {n_ref} "
              f"simulations, {games} games, one process:", "",
              "| Mode | Score | Simulations/move | FLOPs/move | ms/move | Deepest's ms/move |",
              "|---|---|---|---|---|---|"]
    for r in same_flops:
        lines.append(f"| {r['mode']} | {cell_text(r)} | {r['a_simulations_per_move'] or 0:.1f} | "
                     f"{r['a_flops_per_move'] or 0:.3g} | {_ms(r['a_seconds_per_move'])} | "
                     f"{_ms(r['b_seconds_per_move'])} |")
    lines += ["", "Same wall-time budget: dynamic against the deepest exit, the seconds per move converted "
              "through the latency table:", "",
              "| s/move | Deepest sims | Dynamic n_ref | Dynamic score | Dynamic ms/move | Deepest ms/move |",
              "|---|---|---|---|---|---|"]
    for r in same_time:
        lines.append(f"| {r['seconds']:.4g} | {r['deepest_sims']} | {r['dynamic_n_ref']} | {cell_text(r)} | "
                     f"{_ms(r['a_seconds_per_move'])} | {_ms(r['b_seconds_per_move'])} |")
    return "\n".join(lines) + "\n"
