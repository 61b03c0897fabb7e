"""Self-play throughput against the network-only ceiling, measured in one run.

    python benchmarks/selfplay_speed.py                      # configs/go9.yaml, embedded Ray
    python benchmarks/selfplay_speed.py --config configs/tictactoe.yaml --seconds 30

Phase 1 runs the real self-play actors (as `selfplay.run` does, same config) for --seconds (then
lets the calls in flight finish, and counts them) and reports games/hour, positions/s (network rows evaluated per second, all actors), and where
actor time went: network (evaluator calls), tree (search, game, batching: the rest of the
call), Ray overhead (time actors sat between calls: transfer, scheduling, the driver).
The ceiling is the bare batched forward (`forward_to(deepest)`, no search) in the same number
of actors with the same threads: measured before self-play at the nominal batch
(concurrent games x leaves per call) and after it at the mean batch self-play used; the two
are averaged, so load from other processes on a shared machine weighs on both sides alike.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dpv.games import make_game  # noqa: E402
from dpv.nets import build_policy_value_net  # noqa: E402
from selfplay.actors import SelfPlayActor  # noqa: E402
from selfplay.config import load_run_config  # noqa: E402


@ray.remote
class ForwardActor:
    """The ceiling: the same network, bare forward passes at a fixed batch size."""

    def __init__(self, cfg_dict: dict, threads: int):
        from selfplay.config import build_run_config

        torch.set_num_threads(threads)
        cfg = build_run_config(cfg_dict)
        game = make_game(cfg.game)
        self.net = build_policy_value_net(cfg.net, game).eval()
        self.shape = game.observation_shape

    @torch.inference_mode()
    def run(self, batch: int, seconds: float) -> tuple[int, float]:
        x = (torch.rand((batch,) + self.shape) < 0.3).float()
        k = self.net.num_exits - 1
        self.net.forward_to(x, k)  # warm-up
        rows, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self.net.forward_to(x, k)
            rows += batch
        return rows, time.perf_counter() - t0


def ceiling(fwd, batch: int, seconds: float) -> float:
    """Positions/s of the bare forward, all actors at once."""
    res = ray.get([f.run.remote(batch, seconds) for f in fwd])
    return sum(rows / secs for rows, secs in res)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="run config (default configs/go9.yaml)")
    p.add_argument("--seconds", type=float, default=120.0, help="self-play measuring time")
    p.add_argument("--ceiling-seconds", type=float, default=20.0)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    cfg = load_run_config(args.config, args.set)
    sp = cfg.selfplay
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, sp.actors * sp.threads_per_actor),
             include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=cfg.ray.object_store_memory or None)
    cfg_dict = cfg.to_dict()
    # num_cpus=0: they must not hold the CPUs the self-play actors are scheduled on
    fwd = [ForwardActor.options(num_cpus=0).remote(cfg_dict, sp.threads_per_actor)
           for _ in range(sp.actors)]
    nominal = sp.concurrent_games * cfg.mcts.leaves_per_call
    ceiling_before = ceiling(fwd, nominal, args.ceiling_seconds / 2)

    # ---- phase 1: self-play, as the run drives it (bounded queue per actor)
    actors = [SelfPlayActor.options(num_cpus=sp.threads_per_actor, max_pending_calls=sp.max_pending_calls)
              .remote(cfg_dict, i, sp.threads_per_actor) for i in range(sp.actors)]
    ray.get([a.play.remote(None, 0, -1, 1) for a in actors])  # start-up and warm-up, not timed
    inflight = {}
    for i, a in enumerate(actors):
        for _ in range(sp.max_pending_calls):
            inflight[a.play.remote(None, 0, -1, sp.moves_per_call)] = i
    t0 = time.perf_counter()
    reports = []
    owed = []  # actors with a free slot Ray has not released yet
    while time.perf_counter() - t0 < args.seconds:
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.05)
        for ref in ready:
            i = inflight.pop(ref)
            reports.append(ray.get(ref))
            owed.append(i)
        still = []
        for i in owed:
            try:
                inflight[actors[i].play.remote(None, 0, -1, sp.moves_per_call)] = i
            except ray.exceptions.PendingCallsLimitExceeded:
                still.append(i)
        owed = still
    # drain: every call submitted in the window is counted whole, and the window ends when the
    # last one does, so no half-finished call is lost from the counts or the busy time
    for ref in list(inflight):
        reports.append(ray.get(ref))
    wall = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    evals = sum(r.evaluations for r in reports)
    calls = sum(r.network_calls for r in reports)
    busy = sum(r.seconds for r in reports)
    net_s = sum(r.network_seconds for r in reports)
    moves = sum(r.moves for r in reports)
    games = [g for r in reports for g in r.games]
    batch = evals / max(calls, 1)

    # ---- phase 2: the ceiling again, batch = the mean self-play batch
    ceiling_after = ceiling(fwd, max(1, round(batch)), args.ceiling_seconds / 2)
    ray.shutdown()
    ceil = (ceiling_before + ceiling_after) / 2

    selfplay_pps = evals / wall
    mean_len = np.mean([len(g) for g in games]) if games else float("nan")
    lines = [
        f"config: {args.config or 'configs/go9.yaml'}  net {cfg.net.blocks}x{cfg.net.channels} "
        f"exits {list(cfg.net.exits)}  {cfg.mcts.simulations} sims  actors {sp.actors} x "
        f"{sp.threads_per_actor} thread(s), {sp.concurrent_games} games each, cpus {os.cpu_count()}",
        f"self-play window             {wall:8.1f} s",
        f"games finished               {len(games):8d}   (mean length {mean_len:.1f} moves)",
        f"games/hour                   {len(games) / wall * 3600:8.1f}",
        f"moves/s                      {moves / wall:8.2f}",
        f"positions/s (network rows)   {selfplay_pps:8.1f}   mean batch {batch:.1f} rows/call",
        f"actor time: network          {net_s / busy:8.1%}",
        f"actor time: tree+game+batch  {(busy - net_s) / busy:8.1%}",
        f"Ray overhead (actors idle)   {max(0.0, 1 - busy / (wall * sp.actors)):8.1%}",
        f"network-only ceiling         {ceil:8.1f} positions/s (bare forward: {ceiling_before:.1f} at "
        f"batch {nominal} before, {ceiling_after:.1f} at batch {max(1, round(batch))} after)",
        f"self-play / ceiling          {selfplay_pps / ceil:8.1%}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
