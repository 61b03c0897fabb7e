"""`python -m dpv.experiments tune`: each dynamic method's own parameters, chosen "through
self-play evaluation" (thesis 6.3.2) before Table 6.3 is played.

For each n_ref, every candidate plays the single best exit under the same budget (Table
6.3's opponent) for a small number of games: `dynamic_static` over a tau0 grid, `dynamic`
over a tau0 x alpha grid. All candidates share one seed (the same openings: a paired
comparison), and that seed must differ from the tables' seed, so the parameters are not
chosen on the games that then measure them. The highest score wins (ties: the first in
grid order); every candidate's score and interval are written beside the choice, so a
reader can see how much the choice is noise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from dpv.errors import DPVError
from dpv.play.single_exit import best_exit_for, opponent_spec
from dpv.play.table_cells import CellRunner, cell_text

TUNE_SEED = 1000  # default tuning seed; the tables default to seed 0
DEFAULT_TAU0_GRID = (0.2, 0.4, 0.6, 0.8)
DEFAULT_ALPHA_GRID = (0.1, 0.3, 0.5)


def _tag(x: float) -> str:
    return f"{x:g}".replace(".", "p").replace("-", "m")


def tune(runner: CellRunner, n_refs: Sequence[int], best: dict[str, int],
         tau0_grid: Sequence[float], alpha_grid: Sequence[float]) -> dict[str, Any]:
    per_n: dict[str, Any] = {}
    for n in n_refs:
        k = best_exit_for(best, n, runner.exits, runner.checkpoint)
        opponent = opponent_spec(runner.spec, k, n)
        static, dynamic = [], []
        for tau0 in tau0_grid:
            name = f"n{n}_static_tau{_tag(tau0)}"
            if runner.wanted(name):
                res = runner.match(name, runner.spec(mode="dynamic_static", n_ref=n, tau0=tau0), opponent)
                static.append({"tau0": tau0, **res})
            if runner.interrupted:
                break
        for tau0 in tau0_grid:
            if runner.interrupted:
                break
            for alpha in alpha_grid:
                name = f"n{n}_dynamic_tau{_tag(tau0)}_alpha{_tag(alpha)}"
                if runner.wanted(name):
                    res = runner.match(name, runner.spec(mode="dynamic", n_ref=n, tau0=tau0, alpha=alpha),
                                       opponent)
                    dynamic.append({"tau0": tau0, "alpha": alpha, **res})
                if runner.interrupted:
                    break
        row: dict[str, Any] = {"best_exit": k, "opponent": opponent, "static_candidates": static,
                               "dynamic_candidates": dynamic}
        if static:
            s = max(static, key=lambda c: c["score"])  # max keeps the first of equal scores
            row["dynamic_static"] = {"tau0": s["tau0"], "score": s["score"], "wilson95": s["wilson95"]}
        if dynamic:
            d = max(dynamic, key=lambda c: c["score"])
            row["dynamic"] = {"tau0": d["tau0"], "alpha": d["alpha"], "score": d["score"],
                              "wilson95": d["wilson95"]}
        per_n[str(n)] = row
        if runner.interrupted:
            break

    lines = [f"Tuning (seed {runner.seed}, {runner.games} games per candidate against the best single "
             "exit under the same budget; the tables use another seed).", ""]
    for n_text, row in per_n.items():
        lines.append(f"n_ref {n_text}, opponent exit {row['best_exit']}:")
        lines.append("")
        lines.append("| Method | tau0 | alpha | Score |")
        lines.append("|---|---|---|---|")
        for c in row["static_candidates"]:
            lines.append(f"| dynamic_static | {c['tau0']:g} | - | {cell_text(c)} |")
        for c in row["dynamic_candidates"]:
            lines.append(f"| dynamic | {c['tau0']:g} | {c['alpha']:g} | {cell_text(c)} |")
        chosen = []
        if "dynamic" in row:
            chosen.append(f"dynamic tau0={row['dynamic']['tau0']:g}, alpha={row['dynamic']['alpha']:g}")
        if "dynamic_static" in row:
            chosen.append(f"dynamic_static tau0={row['dynamic_static']['tau0']:g}")
        lines += ["", "Chosen: " + ("; ".join(chosen) if chosen else "nothing yet") + ".", ""]
    return {"kind": "tune", "checkpoint": runner.checkpoint, "games": runner.games,
            "seed": runner.seed, "tau0_grid": list(tau0_grid), "alpha_grid": list(alpha_grid),
            "n_ref": per_n, "interrupted": runner.interrupted, "markdown": "\n".join(lines)}


def tuned_parameters(path: str | Path, table_seed: int) -> dict[str, Any]:
    """The parameters a tune.json chose, per n_ref; refused when it was tuned on the seed
    the table is about to play (the same openings)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        per_n = data["n_ref"]
        seed = int(data["seed"])
    except FileNotFoundError:
        raise DPVError(f"tuning results not found: {p}") from None
    except (ValueError, KeyError, TypeError):
        raise DPVError(f"{p} is not a tune.json (python -m dpv.experiments tune)") from None
    if seed == table_seed:
        raise DPVError(f"{p} was tuned with seed {seed}, the seed of this table: give the table "
                       "another --seed (or tune on another one) so the tuning games are not reused")
    out = {}
    for n, row in per_n.items():
        if "dynamic" in row and "dynamic_static" in row:
            out[str(n)] = {"dynamic": {"tau0": row["dynamic"]["tau0"], "alpha": row["dynamic"]["alpha"]},
                           "dynamic_static": {"tau0": row["dynamic_static"]["tau0"]},
                           "source": f"tuned ({p}, seed {seed}, {data.get('games')} games per candidate)"}
    return out
