"""`python -m dpv.gtp`: the command line of the GTP engine (`dpv.play.gtp`).

    python -m dpv.gtp --checkpoint ckpt/best.pt --mode dynamic --n-ref 100 --tau0 0.6 --alpha 0.3
    python -m dpv.gtp --player random
"""
from __future__ import annotations

import argparse
import sys

from dpv import __version__
from dpv.config import GameConfig
from dpv.errors import DPVError, cli_main
from dpv.play.gtp import GTPEngine, go_config


def _player_spec(args) -> str:
    if args.player and args.checkpoint:
        raise DPVError("give either --player or --checkpoint, not both")
    if args.player:
        return args.player
    if not args.checkpoint:
        raise DPVError("give --checkpoint PATH or --player SPEC (e.g. --player random)")
    opts = [f"mode={args.mode}"]
    for key in ("n_ref", "tau0", "alpha", "exit", "sims"):
        v = getattr(args, key)
        if v is not None:
            opts.append(f"{key}={v}")
    return f"net:{args.checkpoint}," + ",".join(opts)


def _board_of_checkpoint(path: str) -> GameConfig | None:
    from dpv.checkpoint import load_checkpoint
    from dpv.config import from_dict

    payload = load_checkpoint(path)
    try:
        return from_dict(GameConfig, payload["game"], "game")
    except (KeyError, DPVError):
        return None  # load_policy_value names the problem when the player is built


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dpv.gtp", description="GTP v2 engine for any DPV player (GUIs: Lizzie, Sabaki, GoGui)")
    p.add_argument("--checkpoint", help="policy-value checkpoint to play with")
    p.add_argument("--mode", default="fixed", help="exit mode: fixed, fixed_budget, dynamic, dynamic_static")
    p.add_argument("--n-ref", dest="n_ref", type=int, help="FLOPs budget in full-network simulations")
    p.add_argument("--tau0", type=float, help="confidence threshold at the start of a search")
    p.add_argument("--alpha", type=float, help="threshold growth with the budget used (tau0 + alpha*r)")
    p.add_argument("--exit", type=int, help="fixed exit index (-1 = deepest)")
    p.add_argument("--sims", type=int, help="simulations per move")
    p.add_argument("--player", help="any player spec instead of a checkpoint: random, mcts:sims=200, ...")
    p.add_argument("--board", type=int, help="initial board size (default: the checkpoint's, else 9)")
    p.add_argument("--komi", type=float, default=7.5)
    p.add_argument("--resign-threshold", type=float, default=None,
                   help="resign when the player's value estimate is below this (default: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for a network player (default 1: a GUI's engine "
                        "shares the machine, and more threads contend under load)")
    p.add_argument("--name", default="DPV")
    p.add_argument("--log", help="append the GTP traffic (lines in and out, timed) to this file")
    p.add_argument("--override-version", metavar="TEXT",
                   help="answer `version` with TEXT instead of DPV's own version, for GUIs that "
                        "read it as a Leela Zero protocol version (Lizzie 0.7.4 wants >= 0.15; "
                        "our lz-analyze speaks Leela Zero 0.17's format), as KataGo's flag of "
                        "the same name does")
    return p


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    spec = _player_spec(args)
    size = args.board
    if size is None:  # the checkpoint's board; one for another game is refused when built
        ck = _board_of_checkpoint(args.checkpoint) if args.checkpoint else None
        size = ck.board_size if ck is not None else GameConfig.board_size
    try:
        cfg = go_config(size, args.komi)
    except DPVError as e:
        raise DPVError(f"--board {size}: {e}") from None
    if args.resign_threshold is not None and not -1.0 <= args.resign_threshold <= 1.0:
        raise DPVError(f"--resign-threshold {args.resign_threshold} is outside [-1, 1]")
    if args.threads < 1:
        raise DPVError(f"--threads {args.threads}: must be >= 1")
    if spec.startswith("net:"):
        import torch

        torch.set_num_threads(args.threads)
    from dpv.players.spec import make_player

    engine = GTPEngine(lambda c: make_player(spec, c, seed=args.seed, device=args.device), cfg,
                       resign_threshold=args.resign_threshold, name=args.name, seed=args.seed,
                       version=args.override_version or __version__)
    log = None
    if args.log:
        try:
            log = open(args.log, "a", encoding="utf-8")
        except OSError as e:
            raise DPVError(f"--log {args.log}: {e.strerror or e}") from None
    try:
        engine.serve(sys.stdin, sys.stdout, log)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the controller went away
    finally:
        engine.close_player()
        if log is not None:
            log.close()


if __name__ == "__main__":
    main()
