"""Arena: a match between two player specs, games in parallel worker processes.

    python -m dpv.arena --a random --b 'gtp:"/usr/games/gnugo --mode gtp --level 1 --chinese-rules --capture-all-dead"' --games 10 --out runs/arena
    python -m dpv.arena --black net:ckpt.pt,mode=dynamic --white mcts:sims=200 --games 20 --out runs/x

`--a/--b` alternates colours (each pair of games shares a random opening); `--black/--white`
keeps them. Each finished game is written at once as SGF and summary.json is rewritten, so
Ctrl-C (or a player that cannot go on) keeps every finished game and a valid summary.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dpv.checkpoint import atomic_write_bytes
from dpv.config import GO_SIZES, GameConfig, load_sections
from dpv.errors import DPVError, cli_main
from dpv.games import make_game
from dpv.games.scoring import parse_result
from dpv.play.match import GameRecord, MatchResult, pair_opening, play_game
from dpv.play.sgf import write_sgf
from dpv.play.stats import win_rate

DEFAULT_OPENING_MOVES = 4


@dataclass
class MatchPlan:
    spec_a: str
    spec_b: str
    game_cfg: GameConfig
    games: int
    alternate: bool = True
    opening_moves: int = DEFAULT_OPENING_MOVES
    seed: int = 0
    device: str = "cpu"

    def tasks(self) -> list[tuple[int, int, list[int]]]:
        """(game index, A's colour, opening actions) for every game."""
        game = make_game(self.game_cfg)
        out = []
        for i in range(self.games):
            a_colour = (i % 2) if self.alternate else 0
            pair = i // 2 if self.alternate else i
            out.append((i, a_colour, pair_opening(game, self.opening_moves, self.seed, pair)))
        return out


def build_players(plan: MatchPlan, worker: int = 0):
    """Both players of the plan; distinct names so the report can tell them apart."""
    from dpv.players.spec import make_player

    a = make_player(plan.spec_a, plan.game_cfg, seed=plan.seed * 1000 + 2 * worker, device=plan.device)
    try:
        b = make_player(plan.spec_b, plan.game_cfg, seed=plan.seed * 1000 + 2 * worker + 1,
                        device=plan.device)
    except BaseException:
        a.close()
        raise
    if a.name == b.name:
        a.name, b.name = f"{a.name} (a)", f"{b.name} (b)"
    return a, b


def _play_task(a, b, plan: MatchPlan, task, game) -> GameRecord:
    index, a_colour, opening = task
    black, white = (a, b) if a_colour == 0 else (b, a)
    rec = play_game(black, white, plan.game_cfg, opening, game=game)
    rec.index, rec.a_colour = index, a_colour
    return rec


def _worker(plan: MatchPlan, worker: int, n_workers: int, tasks, results) -> None:
    """Worker process: build the players once, play games from the queue until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, lambda *_: _stop_now(results))  # -> finally: engines are closed
    a = b = None
    try:
        a, b = build_players(plan, worker)
        if "torch" in sys.modules:  # share the cores between workers instead of oversubscribing
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
        game = make_game(plan.game_cfg)
        while (task := tasks.get()) is not None:
            results.put(("game", _play_task(a, b, plan, task, game).to_dict()))
    except DPVError as e:
        results.put(("error", str(e)))
    except Exception:
        results.put(("crash", traceback.format_exc()))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already closing the players
        for p in (a, b):
            if p is not None:
                p.close()


def _stop_now(results) -> None:
    # Only when the parent stops us early: it no longer reads, so do not wait to flush. On a
    # normal exit the queue's feeder thread is joined, so every result put reaches the pipe.
    results.cancel_join_thread()
    sys.exit(0)


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
        # SGF first: a Ctrl-C between the two steps leaves no game in the summary without its file
        if self.out is not None:
            atomic_write_bytes(self.out / sgf_name(rec), self.sgf(rec).encode())
        self.records.append(rec)
        if self.out is not None:
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

    def summary(self) -> dict:
        return summarize(self.result(), self.plan, interrupted=self.interrupted,
                         stopped_by=self.stopped_by)

    def write_summary(self) -> None:
        atomic_write_bytes(self.out / "summary.json", (json.dumps(self.summary(), indent=2) + "\n").encode())


def sgf_name(rec: GameRecord) -> str:
    return f"game_{rec.index + 1:04d}.sgf"


def _mirror(wld: tuple[int, int, int]) -> dict:
    w, l, d = wld
    return {"wins": l, "losses": w, "draws": d}


def summarize(match: MatchResult, plan: MatchPlan, interrupted: bool = False, stopped_by: str = "") -> dict:
    recs = match.records
    wr = win_rate(match.wins, match.losses, match.draws)
    by = match.by_colour()
    per_player = {}
    for who, name, is_a in (("a", match.a, True), ("b", match.b, False)):
        moves = seconds = flops = sims = 0
        for r in recs:
            colour = r.a_colour if is_a else (r.a_colour ^ 1)
            t = r.totals[colour]
            moves, seconds, flops, sims = moves + t.moves, seconds + t.seconds, flops + t.flops, sims + t.simulations
        per_player[who] = {"name": name, "spec": plan.spec_a if is_a else plan.spec_b, "moves": moves,
                           "seconds_per_move": seconds / moves if moves else None,
                           "flops_per_move": flops / moves if moves else None,
                           "simulations_per_move": sims / moves if moves else None}
    reasons: dict[str, int] = {}
    for r in recs:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    checked = [r for r in recs if r.engine_scores]
    exact = sum(1 for r in checked for ans in r.engine_scores.values() if _same_margin(ans, r.score))
    return {
        "a": plan.spec_a, "b": plan.spec_b, "a_name": match.a, "b_name": match.b,
        "colours": "alternated" if plan.alternate else "a=black, b=white",
        "game": plan.game_cfg.name, "board_size": plan.game_cfg.board_size, "komi": plan.game_cfg.komi,
        "games_planned": plan.games, "games_played": len(recs), "interrupted": interrupted,
        "stopped_by": stopped_by, "seed": plan.seed, "opening_moves": plan.opening_moves,
        "a_result": {**wr.to_dict(),
                     "as_black": dict(zip(("wins", "losses", "draws"), by["black"])),
                     "as_white": dict(zip(("wins", "losses", "draws"), by["white"]))},
        "b_result": {"wins": match.losses, "losses": match.wins, "draws": match.draws,
                     "as_black": _mirror(by["white"]), "as_white": _mirror(by["black"])},
        "avg_game_length": sum(r.length for r in recs) / len(recs) if recs else None,
        "per_player": per_player,
        "end_reasons": reasons,
        "forfeits": [{"game": r.index + 1, "result": r.result, "detail": r.detail}
                     for r in recs if r.reason == "forfeit"],
        "score_check": {"games_with_engine_score": len(checked),
                        "winner_disagreements": sum(r.score_disagreements for r in recs),
                        "exact_margin_agreements": exact},
        "games": [{"game": r.index + 1, "black": r.black, "white": r.white, "result": r.result,
                   "reason": r.reason, "moves": r.length, "sgf": sgf_name(r),
                   **({"detail": r.detail} if r.detail else {}),
                   **({"engine_scores": r.engine_scores} if r.engine_scores else {})} for r in recs],
    }


def _same_margin(answer: str, score: float | None) -> bool:
    try:
        winner, margin = parse_result(answer)
    except ValueError:
        return False
    if score is None or margin is None:
        return False
    return abs((margin if winner == 0 else -margin) - score) < 1e-6


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
                    finished(_play_task(a, b, plan, task, game))
            finally:
                a.close()
                b.close()
        else:
            a.close()
            b.close()
            _run_parallel(plan, tasks, workers, run, finished)
    except KeyboardInterrupt:
        run.interrupted = True
    except DPVError as e:
        run.stopped_by = str(e)
    finally:
        bar.close()
        if out_dir is not None:
            run.write_summary()
    return run


def _run_parallel(plan: MatchPlan, tasks, workers: int, run: ArenaRun, finished) -> None:
    # spawn, not fork: a parent that has torch's thread pools must not be forked
    ctx = mp.get_context("spawn")
    task_q, result_q = ctx.Queue(), ctx.Queue()
    # on Ctrl-C the unread tasks stay queued: exiting must not wait to flush them into the pipe
    task_q.cancel_join_thread()
    for t in tasks:
        task_q.put(t)
    workers = min(workers, len(tasks)) or 1
    for _ in range(workers):
        task_q.put(None)
    procs = [ctx.Process(target=_worker, args=(plan, w, workers, task_q, result_q), daemon=True)
             for w in range(workers)]
    for p in procs:
        p.start()
    done = 0
    try:
        while done < len(tasks):
            try:
                kind, payload = result_q.get(timeout=1.0)
            except queue.Empty:
                if any(p.is_alive() for p in procs):
                    continue
                try:  # a worker's last result can land between the timeout and its exit
                    kind, payload = result_q.get(timeout=5.0)
                except queue.Empty:
                    raise DPVError("all arena workers exited before the match finished") from None
            if kind == "game":
                finished(GameRecord.from_dict(payload))
                done += 1
            elif kind == "error":
                raise DPVError(payload)
            else:
                print(payload, file=sys.stderr)
                raise DPVError("an arena worker crashed (traceback above)")
    finally:
        if done == len(tasks):  # finished: workers have their stop signal and close their engines
            for p in procs:
                p.join(timeout=10)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def _game_text(summary: dict) -> str:
    if summary["game"] != "go":
        return summary["game"].replace("_", " ")
    return f"{summary['board_size']}x{summary['board_size']} Go, komi {summary['komi']:g}"


def report(summary: dict) -> str:
    """The summary as a short human-readable table."""
    a, b = summary["a_result"], summary["b_result"]
    pp = summary["per_player"]

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    elo = "+inf" if a["elo"] is None and a["score"] >= 0.5 else ("-inf" if a["elo"] is None else f"{a['elo']:+.0f}")
    e95 = ["-inf" if x is None and i == 0 else "+inf" if x is None else f"{x:+.0f}"
           for i, x in enumerate(a["elo95"])]
    lines = [
        f"{summary['games_played']}/{summary['games_planned']} games, {_game_text(summary)}"
        + (" (interrupted)" if summary["interrupted"] else "")
        + (f" (stopped: {summary['stopped_by']})" if summary["stopped_by"] else ""),
        f"{'player':<28} {'W':>4} {'L':>4} {'D':>4}  {'as black W/L/D':>15}  {'as white W/L/D':>15}  "
        f"{'s/move':>8} {'FLOPs/move':>11}",
    ]
    for who, res in (("a", a), ("b", b)):
        p = pp[who]
        bk, wt = res["as_black"], res["as_white"]
        lines.append(f"{p['name'][:28]:<28} {res['wins']:>4} {res['losses']:>4} {res['draws']:>4}  "
                     f"{bk['wins']:>5}/{bk['losses']}/{bk['draws']:<6}  {wt['wins']:>5}/{wt['losses']}/{wt['draws']:<6}  "
                     f"{fmt(p['seconds_per_move'], '8.4f')} {fmt(p['flops_per_move'], '11.3g')}")
    lines.append(f"{pp['a']['name']} score {100 * a['score']:.1f}% (Wilson 95% "
                 f"[{100 * a['wilson95'][0]:.1f}, {100 * a['wilson95'][1]:.1f}]), "
                 f"Elo diff {elo} [{e95[0]}, {e95[1]}]")
    lines.append(f"average game length {fmt(summary['avg_game_length'], '.1f')} moves; "
                 f"end reasons {summary['end_reasons']}")
    sc = summary["score_check"]
    if sc["games_with_engine_score"]:
        lines.append(f"engine final_score checked on {sc['games_with_engine_score']} games: "
                     f"{sc['winner_disagreements']} winner disagreements, "
                     f"{sc['exact_margin_agreements']} exact margin agreements")
    for f in summary["forfeits"]:
        lines.append(f"game {f['game']}: {f['result']} forfeit: {f['detail']}")
    return "\n".join(lines)


def game_config(args) -> GameConfig:
    """The game from --config (its game section), with --board / --komi on top."""
    if args.config:
        base = load_sections(args.config, {"game": GameConfig}, strict=False)["game"]
    else:
        base = GameConfig()
    size = args.board if args.board is not None else base.board_size
    if base.name == "go" and size not in GO_SIZES:
        raise DPVError(f"--board {size} is not a supported Go board size {GO_SIZES}")
    komi = args.komi if args.komi is not None else base.komi
    length = base.max_game_length if size == base.board_size else None
    return GameConfig(name=base.name, board_size=size, komi=komi,
                      max_game_length=length or 4 * size * size, history=base.history)


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
    summary = run.summary()
    print(report(summary))
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
