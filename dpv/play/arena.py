"""Arena: a match between two player specs, games in parallel worker processes.

    python -m dpv.arena --a random --b 'gtp:"/usr/games/gnugo --mode gtp --level 1 --chinese-rules --capture-all-dead"' --games 10 --out runs/arena
    python -m dpv.arena --black net:ckpt.pt,mode=dynamic --white mcts:sims=200 --games 20 --out runs/x

`--a/--b` alternates colours (each pair of games shares a random opening); `--black/--white`
keeps them. Each finished game is written at once as SGF and summary.json is rewritten, so
Ctrl-C (or a player that cannot go on) keeps every finished game and a valid summary.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dpv.checkpoint import atomic_write_bytes
from dpv.config import GameConfig, load_sections
from dpv.errors import DPVError, cli_main
from dpv.games import make_game
from dpv.play.match import play_task
from dpv.play.plan import DEFAULT_OPENING_MOVES, MatchPlan, build_players
from dpv.play.pool import play_in_workers
from dpv.play.records import GameRecord, MatchResult
from dpv.play.sgf import write_sgf
from dpv.play.summary import ArenaSummary, sgf_name

__all__ = ["ArenaRun", "MatchPlan", "build_players", "main", "run_match"]


@dataclass
class ArenaRun:
    plan: MatchPlan
    out: Path | None
    a_name: str = "a"
    b_name: str = "b"
    records: list[GameRecord] = field(default_factory=list)
    interrupted: bool = False
    stopped_by: str = ""  # why the match ended early (a player that could not go on)

    def add(self, rec: GameRecord) -> None:
        # recorded first: a Ctrl-C during the writes below is finished by flush()
        self.records.append(rec)
        if self.out is not None:
            atomic_write_bytes(self.out / sgf_name(rec), self.sgf(rec).encode())
            self.write_summary()

    def flush(self) -> None:
        """Every recorded game's SGF and the summary on disk (after an interruption, too)."""
        if self.out is None:
            return
        for rec in self.records:
            if not (self.out / sgf_name(rec)).exists():
                atomic_write_bytes(self.out / sgf_name(rec), self.sgf(rec).encode())
        self.write_summary()

    def sgf(self, rec: GameRecord) -> str:
        why = {"score": "two passes, area scoring", "max_length": "move limit reached, area scoring",
               "superko": "repeated position (superko): draw", "resign": "resignation",
               "forfeit": f"forfeit: {rec.detail}"}[rec.reason]
        lines = [f"DPV arena game {rec.index + 1}; {why}",
                 f"first {rec.opening_moves} moves: random opening chosen by the arena"]
        lines += [f"{name} final_score: {ans}" for name, ans in rec.engine_scores.items()]
        notes = {i: "random opening move" for i in range(1, rec.opening_moves + 1)}
        return write_sgf(rec.moves, rec.board_size, rec.komi, rec.black, rec.white, rec.result,
                         rules="Chinese", comment="\n".join(lines), move_comments=notes,
                         extra={"GN": f"{rec.black} vs {rec.white} #{rec.index + 1}"})

    def result(self) -> MatchResult:
        return MatchResult(self.a_name, self.b_name, sorted(self.records, key=lambda r: r.index))

    def summary(self) -> ArenaSummary:
        return ArenaSummary.of(self.result(), self.plan, interrupted=self.interrupted,
                               stopped_by=self.stopped_by)

    def write_summary(self) -> None:
        if self.out is not None:
            atomic_write_bytes(self.out / "summary.json", self.summary().to_json().encode())


def run_match(plan: MatchPlan, out: str | Path | None = None, workers: int = 1,
              progress: bool = True, on_game: Callable[[GameRecord], None] | None = None) -> ArenaRun:
    """Play the plan; returns what finished (also on Ctrl-C, with `interrupted` set).

    Players are built once here first, so bad specs, missing engines, unreadable checkpoints
    and board size mismatches fail with one line before any game starts."""
    from tqdm import tqdm

    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    a, b = build_players(plan)
    run = ArenaRun(plan, out_dir, a.name, b.name)
    tasks = plan.tasks()
    bar = tqdm(total=plan.games, desc=f"{a.name} vs {b.name}", unit="game", disable=not progress,
               dynamic_ncols=True, leave=False)

    def finished(rec: GameRecord) -> None:
        run.add(rec)
        bar.update(1)
        bar.set_postfix_str(f"{run.a_name} {run.result().score:.0%}")
        if on_game is not None:
            on_game(rec)

    try:
        if workers <= 1:
            try:
                game = make_game(plan.game_cfg)
                for task in tasks:
                    finished(play_task(a, b, plan.game_cfg, task, game))
            finally:
                a.close()
                b.close()
        else:
            a.close()
            b.close()
            play_in_workers(plan, tasks, workers, finished)
    except KeyboardInterrupt:
        run.interrupted = True
    except DPVError as e:
        run.stopped_by = str(e)
    finally:
        bar.close()
        run.flush()
    return run


def game_config(args: argparse.Namespace) -> GameConfig:
    """The game from --config (its game section), with --board / --komi on top."""
    if args.config:
        base = load_sections(args.config, {"game": GameConfig}, strict=False)["game"]
    else:
        base = GameConfig()
    size = args.board if args.board is not None else base.board_size
    komi = args.komi if args.komi is not None else base.komi
    length = base.max_game_length if size == base.board_size else None
    cfg = dataclasses.replace(base, board_size=size, komi=komi,
                              max_game_length=length or 4 * size * size)
    try:
        cfg.validate("game")  # the game adapter's registry knows which boards a game has
    except DPVError as e:
        raise DPVError(f"--board {size}: {e}") from None
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dpv.arena", description=__doc__.split("\n\n")[0])
    p.add_argument("--a", help="player A (colours alternate with B)")
    p.add_argument("--b", help="player B")
    p.add_argument("--black", help="player with black in every game (with --white)")
    p.add_argument("--white", help="player with white in every game")
    p.add_argument("--games", type=int, default=10)
    p.add_argument("--board", type=int, help="board size (default: the config's, else 9)")
    p.add_argument("--komi", type=float)
    p.add_argument("--config", help="YAML config whose game section sets the game")
    p.add_argument("--out", help="directory for game_NNNN.sgf and summary.json")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="games played in parallel (processes)")
    p.add_argument("--opening-moves", type=int, default=DEFAULT_OPENING_MOVES,
                   help="random opening moves per pair of games (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.a is None) != (args.b is None) or (args.black is None) != (args.white is None) \
            or (args.a is None) == (args.black is None):
        raise DPVError("give --a SPEC --b SPEC (colours alternate) or --black SPEC --white SPEC")
    if args.games < 1:
        raise DPVError(f"--games must be >= 1, got {args.games}")
    if args.workers < 1:
        raise DPVError(f"--workers must be >= 1, got {args.workers}")
    if args.opening_moves < 0:
        raise DPVError(f"--opening-moves must be >= 0, got {args.opening_moves}")
    alternate = args.a is not None
    plan = MatchPlan(args.a if alternate else args.black, args.b if alternate else args.white,
                     game_config(args), args.games, alternate, args.opening_moves, args.seed, args.device)
    run = run_match(plan, args.out, workers=args.workers, progress=not args.no_progress)
    print(run.summary().report())
    if args.out:
        print(f"wrote {len(run.records)} SGF files and {Path(args.out) / 'summary.json'}")
    if run.interrupted:
        return 130
    if run.stopped_by:
        print(f"error: {run.stopped_by}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
