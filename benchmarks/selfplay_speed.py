"""Self-play throughput against the network-only ceiling, measured in one run.

    python benchmarks/selfplay_speed.py                          # configs/go9.yaml, local inference
    python benchmarks/selfplay_speed.py --inference server       # one batching inference server
    python benchmarks/selfplay_speed.py --inference both         # the two interleaved, one run
    python benchmarks/selfplay_speed.py --synthetic --device cuda --clients 16 --rows 64
                                                                 # the batching core alone

Real self-play (Ray, OpenSpiel): the self-play actors of `selfplay.run` (the same worker and
config) play for --seconds per window; with --inference both, local and server windows
alternate --rounds times, so load from other processes weighs on both alike. Each window's
calls in flight are drained and counted whole. Reported per mode: games/hour, positions/s
(network rows evaluated per second, all actors), the mean batch the network saw (per actor
call in local mode, per server batch in server mode), the network-only ceiling at that
batch (the bare `forward_to(deepest)` in the same processes and threads: `actors` processes
for local, the server's serving thread for server), measured just before and just after
each window and averaged, and the split
of actor time: tree (search, batching: the rest), game (inside the game engine's state
calls, timed by a wrapper), network (local forward, or waiting for the server), and idle
(between calls: transfer, scheduling, the driver).

--synthetic: no Ray and no OpenSpiel (the lent GPU machine has neither): the batching core
(dpv.inference) in this process, --clients threads each sending --rows rows of random 0/1
planes and waiting for the answer (optionally --client-ms of work between requests, as a
game actor's tree would), against the bare forward at the server's mean batch.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import markdown_table  # noqa: E402
from benchmarks.exit_speed import CHECKS, go_net, write_checks  # noqa: E402


# ------------------------------------------------------------------ the game, timed
class _Clock:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


def _unwrap(x):
    return x._s if isinstance(x, TimedState) else x


class TimedState:
    """A game state that adds the time spent in its engine calls to a clock (children and
    clones are timed too); anything else is the wrapped state's."""

    __slots__ = ("_s", "_c")

    def __init__(self, state, clock: _Clock):
        self._s = state
        self._c = clock

    def _t(self, name, *args):
        t0 = time.perf_counter()
        out = getattr(self._s, name)(*args)
        self._c.seconds += time.perf_counter() - t0
        return out

    def child(self, action):
        return TimedState(self._t("child", action), self._c)

    def clone(self):
        return TimedState(self._t("clone"), self._c)

    def current_player(self):
        return self._t("current_player")

    def legal_actions(self):
        return self._t("legal_actions")

    def legal_mask(self):
        return self._t("legal_mask")

    def apply(self, action):
        return self._t("apply", action)

    def is_terminal(self):
        return self._t("is_terminal")

    def returns(self):
        return self._t("returns")

    def terminal_value(self):
        return self._t("terminal_value")

    def observation(self):
        return self._t("observation")

    def history(self):
        return self._t("history")

    def is_legal(self, action):
        return self._t("is_legal", action)

    def move_number(self):
        return self._t("move_number")

    def playout(self, rng):
        return self._t("playout", rng)

    def __getattr__(self, name):
        return getattr(self._s, name)


class TimedGame:
    """The game adapter, handing out timed states and taking them back unwrapped."""

    def __init__(self, game, clock: _Clock):
        self._g = game
        self._c = clock

    def new_state(self):
        return TimedState(self._g.new_state(), self._c)

    def __getattr__(self, name):
        attr = getattr(self._g, name)
        if not callable(attr):
            return attr
        return lambda *a, **k: attr(*map(_unwrap, a), **{n: _unwrap(v) for n, v in k.items()})


# ------------------------------------------------------------------ real self-play on Ray
def _ray_actors():
    import ray

    @ray.remote(max_restarts=0)
    class BenchActor:
        """What selfplay.actors.SelfPlayActor builds (the same worker, local or served), with
        its game engine timed."""

        def __init__(self, cfg_dict: dict, seed: int, threads: int, server=None):
            torch.set_num_threads(threads)
            from selfplay.config import build_run_config
            from selfplay.inference import RayService
            from selfplay.worker import SelfPlayWorker

            self.clock = _Clock()
            service = None if server is None else RayService(server)
            self.worker = w = SelfPlayWorker(build_run_config(cfg_dict), seed, "cpu", service)
            w.game = TimedGame(w.game, self.clock)
            w.slots = [w._new_slot() for _ in w.slots]

        def set_weights(self, weights) -> None:
            self.worker.set_weights(weights, 0)

        def play(self, moves: int):
            g0 = self.clock.seconds
            report = self.worker.play(moves)
            return report, self.clock.seconds - g0

    @ray.remote
    class ForwardActor:
        """The ceiling: the same network, bare forward passes at a fixed batch size."""

        def __init__(self, cfg_dict: dict, threads: int):
            from dpv.games import make_game
            from dpv.nets import build_policy_value_net
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

    return BenchActor, ForwardActor


@dataclass
class ModeTotals:
    """Sums over a mode's windows."""

    wall: float = 0.0
    reports: list = field(default_factory=list)
    game_s: float = 0.0
    ceiling_x_wall: float = 0.0  # ceiling of each window weighted by its wall time
    server_rows: int = 0
    server_batches: int = 0
    server_busy: float = 0.0
    batch_seen: list = field(default_factory=list)


class Mode:
    def __init__(self, name: str, cfg, ray, BenchActor, ForwardActor, weights):
        self.name = name
        self.cfg = cfg
        self.ray = ray
        sp = cfg.selfplay
        d = cfg.to_dict()
        self.server = None
        if name == "server":
            from selfplay.inference import InferenceServerActor

            threads = sp.server_threads or sp.actors * sp.threads_per_actor
            self.server = InferenceServerActor.options(num_cpus=0).remote(d, sp.actors, threads, "cpu", weights, 0)
            self.fwd = []  # the server times its own bare forward, in its serving thread
        else:
            self.fwd = [ForwardActor.options(num_cpus=0).remote(d, sp.threads_per_actor)
                        for _ in range(sp.actors)]
        self.actors = [BenchActor.options(num_cpus=0, max_pending_calls=sp.max_pending_calls)
                       .remote(d, i, sp.threads_per_actor, self.server) for i in range(sp.actors)]
        if not self.server:  # both modes play with the same network
            ray.get([a.set_weights.remote(weights) for a in self.actors])
        ray.get([a.play.remote(1) for a in self.actors])  # start-up and warm-up, not timed
        self.t = ModeTotals()
        self.nominal = sp.concurrent_games * cfg.mcts.leaves_per_call  # rows per actor step

    def ceiling(self, batch: int, seconds: float) -> float:
        """Positions/s of the bare forward at `batch`: all local actors' processes at once,
        or the server in its serving thread."""
        if self.server:
            return self.ray.get(self.server.forward_rate.remote(batch, seconds))
        return sum(rows / secs for rows, secs in self.ray.get([f.run.remote(batch, seconds) for f in self.fwd]))

    def window(self, seconds: float, ceiling_seconds: float) -> None:
        """Self-play for `seconds`, with the ceiling measured just before (at the last batch
        seen) and just after (at this window's batch) and averaged: drift in the machine's
        load between them weighs on both sides alike."""
        ray, sp = self.ray, self.cfg.selfplay
        t = self.t
        before = self.ceiling(max(1, round(t.batch_seen[-1])) if t.batch_seen else self.nominal, ceiling_seconds / 2)
        s0 = ray.get(self.server.stats.remote()) if self.server else None
        inflight, reports, owed = {}, [], []
        for i, a in enumerate(self.actors):
            for _ in range(sp.max_pending_calls):
                inflight[a.play.remote(sp.moves_per_call)] = i
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.05)
            for ref in ready:
                owed.append(inflight.pop(ref))
                reports.append(ray.get(ref))
            still = []
            for i in owed:
                try:
                    inflight[self.actors[i].play.remote(sp.moves_per_call)] = i
                except ray.exceptions.PendingCallsLimitExceeded:
                    still.append(i)
            owed = still
        reports += ray.get(list(inflight))  # drain: every call of the window counted whole
        wall = time.perf_counter() - t0
        t.wall += wall
        t.reports += [r for r, _ in reports]
        t.game_s += sum(g for _, g in reports)
        if self.server:
            s1 = ray.get(self.server.stats.remote())
            t.server_rows += s1.rows - s0.rows
            t.server_batches += s1.batches - s0.batches
            t.server_busy += s1.busy_seconds - s0.busy_seconds
            batch = (s1.rows - s0.rows) / max(1, s1.batches - s0.batches)
        else:
            batch = sum(r.evaluations for r, _ in reports) / max(1, sum(r.network_calls for r, _ in reports))
        t.batch_seen.append(batch)
        ceil = (before + self.ceiling(max(1, round(batch)), ceiling_seconds / 2)) / 2
        t.ceiling_x_wall += ceil * wall
        evals = sum(r.evaluations for r, _ in reports)
        print(f"{self.name}: window {wall:.1f} s, {evals / wall:.1f} positions/s, batch {batch:.1f}, "
              f"ceiling {ceil:.1f}", file=sys.stderr, flush=True)

    def row(self) -> list[object]:
        t, sp = self.t, self.cfg.selfplay
        reps = t.reports
        evals = sum(r.evaluations for r in reps)
        busy = sum(r.seconds for r in reps)
        net_s = sum(r.network_seconds for r in reps)
        games = sum(len(r.games) for r in reps)
        pps = evals / t.wall
        ceil = t.ceiling_x_wall / t.wall
        if self.server:
            batch = t.server_rows / max(1, t.server_batches)
        else:
            batch = evals / max(1, sum(r.network_calls for r in reps))
        tree = busy - net_s - t.game_s
        return [self.name, f"{t.wall:.0f}", f"{games / t.wall * 3600:.0f}", f"{pps:.1f}", f"{batch:.1f}",
                f"{ceil:.1f}", f"{pps / ceil:.1%}", f"{tree / busy:.0%}", f"{t.game_s / busy:.0%}",
                f"{net_s / busy:.0%}", f"{max(0.0, 1 - busy / (t.wall * sp.actors)):.0%}",
                f"{t.server_busy / t.wall:.0%}" if self.server else "-"]

    def close(self) -> None:
        for a in self.actors + self.fwd + ([self.server] if self.server else []):
            self.ray.kill(a)


def real(args) -> None:
    import ray

    from selfplay.config import load_run_config

    cfg = load_run_config(args.config, args.set)
    sp = cfg.selfplay
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, sp.actors * sp.threads_per_actor),
             include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=cfg.ray.object_store_memory or None)
    BenchActor, ForwardActor = _ray_actors()
    from dpv.games import make_game
    from dpv.nets import build_policy_value_net

    torch.manual_seed(0)
    weights = ray.put(build_policy_value_net(cfg.net, make_game(cfg.game)).state_dict())
    names = ["local", "server"] if args.inference == "both" else [args.inference]
    modes = [Mode(n, cfg, ray, BenchActor, ForwardActor, weights) for n in names]
    rounds = args.rounds if args.inference == "both" else 1
    for r in range(rounds):
        for m in (modes if r % 2 == 0 else modes[::-1]):  # ABBA order: drift hits both alike
            m.window(args.seconds / rounds, args.ceiling_seconds)
    rows = [m.row() for m in modes]
    for m in modes:
        m.close()
    ray.shutdown()
    print(f"config: {args.config or 'configs/go9.yaml'}  net {cfg.net.blocks}x{cfg.net.channels} exits "
          f"{list(cfg.net.exits)}  {cfg.mcts.simulations} sims x {cfg.mcts.leaves_per_call} leaves/call  "
          f"actors {sp.actors} x {sp.threads_per_actor} thread(s), {sp.concurrent_games} games each, "
          f"cpus {os.cpu_count()}, {rounds} round(s)")
    print(markdown_table(["inference", "window s", "games/h", "positions/s", "mean batch",
                          "ceiling at that batch", "share of ceiling", "tree", "game", "network/wait",
                          "actors idle", "server busy"], rows))


# ------------------------------------------------------------------ the batching core alone
def synthetic(args) -> None:
    from dpv.exits import FixedExit
    from dpv.inference import InferenceServer

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    table = []
    for cfg in args.config.split(","):
        net = go_net(cfg, dev)
        shape, acts = net.input_shape, net.num_actions
        rng = np.random.default_rng(0)
        planes = [(rng.random((args.rows,) + shape) < 0.3).astype(np.uint8) for _ in range(args.clients)]
        mask = np.ones((args.rows, acts), dtype=bool)
        policy = FixedExit(-1)
        server = InferenceServer(net, dev, args.max_batch or args.clients * args.rows, args.max_wait_ms,
                                 {"precision": args.precision, "channels_last": args.channels_last,
                                  "compile_fixed": args.compile})
        stop = threading.Event()
        done = [0] * args.clients

        def client(i: int) -> None:
            while not stop.is_set():
                server.evaluate_rows(policy, planes[i], mask)
                done[i] += args.rows
                if args.client_ms:
                    time.sleep(args.client_ms / 1000)

        for i in range(args.clients):  # warm-up, not timed
            server.evaluate_rows(policy, planes[i], mask)
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        b0, r0 = server.stats.batches, server.stats.rows
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rows = sum(done)
        batch = (server.stats.rows - r0) / max(1, server.stats.batches - b0)
        # the ceiling: the bare forward at the server's mean batch, timed in its serving
        # thread (same device, precision and layout)
        ceil = server.forward_rate(max(1, round(batch)), args.ceiling_seconds)
        server.close()
        pps = rows / wall
        name = cfg + (" compiled" if args.compile else "")
        table.append([name, args.precision, args.clients, args.rows, f"{pps:,.0f}", f"{batch:.1f}",
                      f"{ceil:,.0f}", f"{pps / ceil:.1%}"])
        CHECKS.append(["batching core vs bare forward", name, f"{batch:.0f}",
                       f"{args.precision}, {args.clients} clients x {args.rows} rows", f"{pps:,.0f}/s",
                       f"{ceil:,.0f}/s", f"{pps / ceil:.1%}", ">= 50%", "PASS" if pps >= 0.5 * ceil else "FAIL"])
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"cpu x{torch.get_num_threads()}"
    print(f"batching core, in-process client threads ({name}); client work {args.client_ms} ms per request")
    print(markdown_table(["config", "precision", "clients", "rows/request", "positions/s", "mean batch",
                          "bare forward at that batch", "share of ceiling"], table))
    write_checks(args.tsv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="run config (default configs/go9.yaml; --synthetic: a comma list)")
    p.add_argument("--inference", choices=("local", "server", "both"), default="local")
    p.add_argument("--seconds", type=float, default=120.0, help="self-play measuring time per mode")
    p.add_argument("--rounds", type=int, default=2, help="--inference both: windows per mode, alternating")
    p.add_argument("--ceiling-seconds", type=float, default=10.0)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--synthetic", action="store_true", help="the batching core alone: no Ray, no OpenSpiel")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rows", type=int, default=64, help="rows per client request")
    p.add_argument("--client-ms", type=float, default=0.0)
    p.add_argument("--max-batch", type=int, default=0, help="0: clients x rows")
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="--synthetic: torch.compile the fixed-exit forward")
    p.add_argument("--tsv", default=None, help="--synthetic: append the check's row to this file")
    args = p.parse_args()
    if args.synthetic:
        args.config = args.config or "configs/go9.yaml"
        synthetic(args)
    else:
        real(args)


if __name__ == "__main__":
    main()
