"""`python -m selfplay.run --board 9`: self-play training on Ray, resumable from its run dir.

    python -m selfplay.run --board 9                       # embedded Ray, configs/go9.yaml
    python -m selfplay.run --config configs/go9_paper.yaml --address auto --run-dir runs/paper
    python -m selfplay.run --board 9 --hours 1 --set mcts.simulations=100

Re-running the same command on an existing run directory resumes it. --address joins a
running Ray cluster (selfplay/cluster.py: token auth matched, code shipped to the nodes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpv.errors import ConfigError, cli_main
from dpv.games.registry import board_sizes, game_info
from selfplay.cluster import connect
from selfplay.config import RunConfig, load_run_config
from selfplay.rundir import RunDir
from selfplay.schedule import Limits


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m selfplay.run", description=__doc__.splitlines()[0])
    p.add_argument("--board", type=int, help="Go board size (starts from configs/go9.yaml)")
    p.add_argument("--config", help="YAML run config (default: configs/go9.yaml)")
    p.add_argument("--run-dir", help="run directory (default: runs/<game><size>)")
    p.add_argument("--address", help="join a Ray cluster: auto or HOST:PORT (default: embedded Ray)")
    p.add_argument("--max-games", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--hours", type=float)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set mcts.simulations=200 (repeatable)")
    p.add_argument("--force-config", action="store_true",
                   help="continue a run directory that holds another config, with this one")
    p.add_argument("--no-progress", action="store_true", help="no progress line on the console")
    return p.parse_args(argv)


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/go9, runs/go19, runs/tic_tac_toe: the board size where the game has several."""
    g = cfg.game
    return Path("runs") / (g.name if board_sizes(g.name) is None else f"{g.name}{g.board_size}")


def plan_line(cfg: RunConfig, rd: RunDir, args: argparse.Namespace, limits: Limits) -> str:
    """The first line: where the run is and what it will do (printed before anything slow)."""
    g, sp = cfg.game, cfg.selfplay
    info = game_info(g.name)
    game = (info.title if info else g.name) + (f" {g.board_size}x{g.board_size}"
                                               if board_sizes(g.name) is not None else "")
    state = "resuming" if rd.states() else "new run"
    ray_where = "embedded Ray" if args.address is None else f"Ray cluster at {args.address}"
    until = ", ".join(f"{flag} {v:g}" for flag, v in (("--max-games", limits.max_games),
                      ("--max-steps", limits.max_steps), ("--hours", limits.hours)) if v is not None)
    return (f"self-play {game} in {rd.path} ({state}), {ray_where}: {sp.actors} actors x "
            f"{sp.concurrent_games} games, {cfg.mcts.simulations} simulations per move, net "
            f"{cfg.net.blocks}x{cfg.net.channels} exits {list(cfg.net.exits)}; until "
            f"{until or 'Ctrl-C'}; TensorBoard: tensorboard --logdir {rd.tb_dir}")


# ------------------------------------------------------------------ main
@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    for name in ("max_games", "max_steps"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    if args.hours is not None and args.hours <= 0:
        raise ConfigError(f"--hours must be > 0, got {args.hours}")
    cfg = load_run_config(args.config, args.set, board=args.board)
    rd = RunDir(args.run_dir or default_run_dir(cfg))
    limits = Limits(args.max_games, args.max_steps, args.hours)
    print(plan_line(cfg, rd, args, limits), file=sys.stderr, flush=True)

    # Everything that can refuse the run happens before anything is written.
    rd.lock()
    try:
        had_config = rd.check_config(cfg.to_dict(), args.force_config)
        from tqdm import tqdm

        from selfplay.driver import TrainingRun

        run = TrainingRun(cfg, rd, limits, progress=not args.no_progress,
                          echo=lambda s: tqdm.write(s, file=sys.stderr))
        resumed = run.restore()
        if resumed:
            for line in resumed.set_aside:
                print(line, file=sys.stderr)
            c = run.counters
            print(f"resuming {rd.path}: games {c.games}, steps {c.steps}, buffer {len(run.buffer)}, "
                  f"best network v{c.best_version}", file=sys.stderr)
        ray_info = connect(args.address, cfg)
        print(f"Ray: {ray_info.where}", file=sys.stderr)
        if ray_info.fit_note:
            print(ray_info.fit_note, file=sys.stderr)
        if not had_config or args.force_config:
            rd.write_config(cfg.to_dict())
        import ray

        try:
            reason = run.run(ray_info.cpu_fit)
        finally:
            ray.shutdown()
        c = run.counters
        print(f"{reason}: games {c.games}, steps {c.steps}, best network v{c.best_version} "
              f"({rd.best_path})", file=sys.stderr)
    finally:
        rd.unlock()
    return 0


if __name__ == "__main__":
    sys.exit(main())
