"""`python -m selfplay.run --board 9`: self-play training on Ray, resumable from its run dir.

    python -m selfplay.run --board 9                       # embedded Ray, configs/go9.yaml
    python -m selfplay.run --config configs/go9_paper.yaml --address auto --run-dir runs/paper
    python -m selfplay.run --board 9 --hours 1 --set mcts.simulations=100

Re-running the same command on an existing run directory resumes it.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from dpv.errors import ConfigError, DPVError, cli_main
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
    g = cfg.game
    return Path("runs") / (f"go{g.board_size}" if g.name == "go" else g.name)


# ------------------------------------------------------------------ Ray
def _address_of_auto() -> str:
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return env
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip():
        return current.read_text().strip()
    raise ConfigError("--address auto: no Ray cluster was started on this machine "
                      "(start one with `ray start --head`, or give HOST:PORT)")


def probe(address: str, timeout: float = 3.0) -> tuple[str, int]:
    """Fail in seconds, with one line, when nothing listens at the cluster's GCS port
    (ray.init itself was seen to take minutes to give up)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address!r} must be auto or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster there ({e.strerror or e})") from None
    return host, int(port)


def connect_ray(address: str | None, cfg: RunConfig) -> None:
    import ray

    # Ray warns on every embedded start that token auth is on; that is its default, not news.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    needed = cfg.selfplay.actors * cfg.selfplay.threads_per_actor + cfg.ray.eval_actors
    if address is None:
        # address="local": never join some other cluster that happens to run on this machine
        try:
            ray.init(address="local", num_cpus=max(cfg.ray.num_cpus or os.cpu_count() or 1, needed),
                     object_store_memory=cfg.ray.object_store_memory or None,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=True)
        except (ValueError, RuntimeError, ConnectionError) as e:  # e.g. an object store /dev/shm cannot hold
            raise ConfigError(f"could not start Ray on this machine: {str(e).splitlines()[0]}") from None
        return
    if address == "auto":
        address = _address_of_auto()
    host, port = probe(address)
    try:
        ray.init(address=f"{host}:{port}", log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as e:
        raise ConfigError(f"--address {address}: could not join the Ray cluster ({e}); if it runs "
                          f"with another token-auth mode, set RAY_AUTH_MODE to match") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < needed:
        ray.shutdown()
        raise ConfigError(f"the Ray cluster at {address} has {cpus:g} CPUs; this config needs "
                          f"{needed} (selfplay.actors x threads_per_actor + ray.eval_actors)")


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
            c = run.counters
            print(f"resuming {rd.path}: games {c.games}, steps {c.steps}, buffer {len(run.buffer)}, "
                  f"best network v{c.best_version}", file=sys.stderr)
        connect_ray(args.address, cfg)
        if not had_config or args.force_config:
            rd.write_config(cfg.to_dict())
        import ray

        try:
            reason = run.run()
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
