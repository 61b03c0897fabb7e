"""One arena match per table cell, resumable: the experiments' tables span sessions.

Each cell plays in its own folder under the table's `out`: `cell.json` (what the cell is:
both specs, the game, games, seed, openings) is written before the first game, and the
arena writes its SGF files and `summary.json` as games finish. A cell whose folder holds a
complete summary.json (every planned game played, not interrupted, not stopped) for the
same cell.json is read back instead of replayed; an incomplete one is replayed from its
first game (the arena's summary keeps tallies, not the per-game state a resume would
need). A folder holding another match is refused, so nothing is overwritten by mistake.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from dpv.checkpoint import atomic_write_bytes
from dpv.config import GameConfig, to_dict
from dpv.errors import DPVError
from dpv.play.arena import MatchPlan, run_match
from dpv.shipped_models import resolve_network


def checkpoint_info(path: str) -> tuple[GameConfig, int]:
    """(game config, number of exits) of a checkpoint; one clear line when it is unreadable."""
    from dpv.checkpoint import load_policy_value

    net, game_cfg = load_policy_value(path)
    return game_cfg, len(net.config.exits)


def cell_identity(plan: MatchPlan) -> dict[str, Any]:
    """What makes two runs the same cell (cell.json)."""
    return {"a": plan.spec_a, "b": plan.spec_b, "game": to_dict(plan.game_cfg),
            "games": plan.games, "seed": plan.seed, "opening_moves": plan.opening_moves,
            "alternate": plan.alternate}


def completed_summary(folder: Path, plan: MatchPlan) -> dict[str, Any] | None:
    """The cell's summary.json when it is complete for this plan; None when the cell has
    still to be played (absent, unreadable or partial). Another match there is an error."""
    ident_path, summary_path = folder / "cell.json", folder / "summary.json"
    if ident_path.exists():
        try:
            ident = json.loads(ident_path.read_text())
        except ValueError:
            ident = None
        if ident is not None and ident != cell_identity(plan):
            raise DPVError(f"{folder} holds another match (a={ident.get('a')!r}, "
                           f"b={ident.get('b')!r}, seed={ident.get('seed')}, games={ident.get('games')}); "
                           "use another --out or remove that folder")
    elif summary_path.exists():
        raise DPVError(f"{folder} holds an arena match that is not a table cell (no cell.json); "
                       "use another --out or remove that folder")
    else:
        return None
    try:
        s = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return None
    done = (s.get("games_played") == plan.games and not s.get("interrupted")
            and not s.get("stopped_by"))
    return s if done else None


def cell_text(res: dict[str, Any]) -> str:
    """'58.5% [51.6, 65.1]': a cell's score and its Wilson 95% interval."""
    lo, hi = res["wilson95"]
    return f"{100 * res['score']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def cell_result(name: str, s: dict[str, Any], resumed: bool) -> dict[str, Any]:
    """A table cell from its arena summary: A's score with its Wilson interval and what each
    side spent per move."""
    pa, pb = s["per_player"]["a"], s["per_player"]["b"]
    return {"match": name, "a": s["a"], "b": s["b"], **{k: s["a_result"][k] for k in (
        "wins", "losses", "draws", "games", "score", "wilson95", "elo", "elo95")},
        "a_simulations_per_move": pa["simulations_per_move"], "a_flops_per_move": pa["flops_per_move"],
        "a_seconds_per_move": pa["seconds_per_move"],
        "b_simulations_per_move": pb["simulations_per_move"], "b_flops_per_move": pb["flops_per_move"],
        "b_seconds_per_move": pb["seconds_per_move"], "resumed": resumed}


class CellRunner:
    """Runs (or reads back) the cells of one table, each in its own folder under `out`."""

    def __init__(self, checkpoint: str, out: Path, games: int, workers: int, seed: int,
                 opening_moves: int, extra: str = "", progress: bool = False,
                 max_moves: int | None = None):
        self.checkpoint = checkpoint  # as given: a shipped name stays a name in cell.json
        self.game_cfg, self.exits = checkpoint_info(resolve_network(checkpoint))
        if max_moves is not None:  # quick runs: games end (and are scored) sooner
            self.game_cfg = dataclasses.replace(self.game_cfg, max_game_length=max_moves)
        self.out = out
        self.games, self.workers, self.seed = games, workers, seed
        self.opening_moves = opening_moves
        self.extra = extra  # spec options added to every net player (e.g. c_puct=2)
        self.progress = progress
        self.interrupted = False
        self.only: set[str] | None = None  # play only these cells (the others are skipped)
        self.resumed: list[str] = []
        self.played: list[str] = []

    @property
    def deepest(self) -> int:
        return self.exits - 1

    def spec(self, **opts: Any) -> str:
        body = ",".join(f"{k}={v}" for k, v in opts.items())
        return f"net:{self.checkpoint},{body}" + (f",{self.extra}" if self.extra else "")

    def wanted(self, name: str) -> bool:
        return self.only is None or name in self.only

    def match(self, name: str, spec_a: str, spec_b: str, games: int | None = None,
              seed: int | None = None) -> dict[str, Any]:
        """The cell `name`: A's result against B, played now or read back when complete."""
        plan = MatchPlan(spec_a, spec_b, self.game_cfg, games or self.games, True,
                         self.opening_moves, self.seed if seed is None else seed)
        folder = self.out / name
        done = completed_summary(folder, plan)
        if done is not None:
            self.resumed.append(name)
            return cell_result(name, done, resumed=True)
        atomic_write_bytes(folder / "cell.json", (json.dumps(cell_identity(plan), indent=2) + "\n").encode())
        run = run_match(plan, folder, workers=self.workers, progress=self.progress)
        if run.stopped_by:
            raise DPVError(f"cell {name} stopped: {run.stopped_by}")
        self.interrupted |= run.interrupted
        self.played.append(name)
        return cell_result(name, run.summary().to_dict(), resumed=False)
