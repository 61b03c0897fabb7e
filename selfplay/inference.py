"""The inference server on Ray (`selfplay.inference: server`): a thin shell around
`dpv.inference.InferenceServer`.

One server actor per node owns the network (on the node's GPU when the run has one); the
self-play actors send it their leaf rows instead of running their own copy, and weight
updates go to the servers only. The actor is threaded (`max_concurrency`): every caller's
request waits in a thread of its own while the core's serving thread batches them, so a
caller that dies leaves nothing waiting on it. A server that dies surfaces in the self-play
actors as `ServerLost`; the driver then starts a new one with the best weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ray
import torch

from dpv.evaluator import Evaluation
from dpv.exits import ExitPolicy
from dpv.inference import InferenceServer, ServerStats
from selfplay.config import RunConfig, build_run_config

# every self-play actor's request may wait at once, each in its own thread
MAX_CONCURRENCY = 256


class ServerLost(RuntimeError):
    """The inference server died under a self-play call (the driver replaces it)."""


def server_max_batch(cfg: RunConfig, actors: int) -> int:
    """Rows per batch: the config's, or all rows `actors` self-play actors send in one step."""
    sp = cfg.selfplay
    return sp.server_max_batch or actors * sp.concurrent_games * cfg.mcts.leaves_per_call


def compact_planes(planes: np.ndarray) -> np.ndarray:
    """Observation planes are 0/1 for every game here: send them as uint8 (a quarter of the
    bytes through the object store) when that is exact, as they are otherwise."""
    small = planes.astype(np.uint8)
    return small if np.array_equal(small, planes) else planes


@ray.remote(max_restarts=0, max_concurrency=MAX_CONCURRENCY)
class InferenceServerActor:
    def __init__(self, cfg_dict: dict, actors: int, threads: int, device: str, weights, version: int):
        from dpv.games import make_game
        from dpv.nets import build_policy_value_net

        torch.set_num_threads(threads)
        cfg = build_run_config(cfg_dict)
        net = build_policy_value_net(cfg.net, make_game(cfg.game))
        if weights is not None:
            net.load_state_dict(weights)
        sp = cfg.selfplay
        self.core = InferenceServer(net, device, server_max_batch(cfg, actors), sp.server_max_wait_ms,
                                    {"precision": sp.server_precision})
        self.core.version = version

    def evaluate_rows(self, policy: ExitPolicy, planes: np.ndarray, legal_mask: np.ndarray,
                      budget_fraction: np.ndarray | None = None,
                      max_exit: np.ndarray | None = None) -> Evaluation:
        return self.core.evaluate_rows(policy, planes, legal_mask, budget_fraction, max_exit)

    def set_weights(self, weights, version: int) -> None:
        self.core.set_weights(weights, version)

    def stats(self) -> ServerStats:
        return self.core.stats

    def forward_rate(self, batch: int, seconds: float) -> float:
        """The bare forward's rows/s at `batch`, in the serving thread (a benchmark's ceiling)."""
        return self.core.forward_rate(batch, seconds)

    def version(self) -> int:
        return self.core.version


@dataclass
class RayService:
    """What a self-play actor's evaluator calls: its server's handle (the driver swaps in a
    new one when a server is replaced)."""

    handle: object

    def evaluate_rows(self, policy: ExitPolicy, planes: np.ndarray, legal_mask: np.ndarray,
                      budget_fraction: np.ndarray | None = None,
                      max_exit: np.ndarray | None = None) -> Evaluation:
        try:
            return ray.get(self.handle.evaluate_rows.remote(  # type: ignore[attr-defined]
                policy, compact_planes(planes), legal_mask, budget_fraction, max_exit))
        except ray.exceptions.RayActorError as e:
            raise ServerLost(f"inference server lost ({type(e).__name__})") from None


class ServerPool:
    """The inference servers of a run: one per live node (soft node affinity), self-play
    actor i served by server i mod n. Each server starts with the newest weights the
    driver gave it, so one that replaces a dead server serves the same network."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.cfg_dict = cfg.to_dict()
        self.servers: list = []
        self.nodes: list[dict] = []
        self.sent: list[int] = []  # weights version each server was sent
        self.weights = None  # newest weights (a Ray ref) and their version
        self.version = -1

    def start(self) -> None:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        self.nodes = nodes or [{}]
        self.servers = [self._new(n) for n in self.nodes]
        self.sent = [self.version] * len(self.servers)

    def _new(self, node: dict):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        sp = self.cfg.selfplay
        actors = -(-sp.actors // len(self.nodes))  # served by each
        gpu = sp.device == "auto" and node.get("Resources", {}).get("GPU", 0) >= 1
        threads = sp.server_threads or actors * sp.threads_per_actor
        strategy = (NodeAffinitySchedulingStrategy(node["NodeID"], soft=True) if node.get("NodeID")
                    else "DEFAULT")
        # num_cpus 0 on a CPU: the server computes while its actors wait for it, so they
        # take turns on the same cores rather than each reserving its own
        return InferenceServerActor.options(num_cpus=0, num_gpus=1 if gpu else 0,
                                            scheduling_strategy=strategy).remote(
            self.cfg_dict, actors, threads, "cuda" if gpu else "cpu", self.weights, self.version)

    def handle_for(self, i: int):
        return self.servers[i % len(self.servers)]

    def sync(self, weights_ref, version: int) -> None:
        """Send `version` to every server that does not have it yet."""
        self.weights, self.version = weights_ref, version
        for j, server in enumerate(self.servers):
            if self.sent[j] != version:
                server.set_weights.remote(weights_ref, version)
                self.sent[j] = version

    def replace_dead(self, note=print) -> int:
        """Start a new server in place of each one that does not answer as alive."""
        replaced = 0
        for j, server in enumerate(self.servers):
            try:
                ray.get(server.version.remote(), timeout=30)
                continue
            except ray.exceptions.GetTimeoutError:
                continue  # busy, not dead
            except ray.exceptions.RayActorError as e:
                note(f"inference server {j} died ({type(e).__name__}); starting a new one")
            self.servers[j] = self._new(self.nodes[j])
            self.sent[j] = self.version
            replaced += 1
        return replaced

    def stats(self) -> list[ServerStats]:
        return ray.get([s.stats.remote() for s in self.servers])

    def stop(self) -> None:
        for s in self.servers:
            ray.kill(s)
        self.servers = []
