"""Thin Ray shells: they build the plain objects and move data in and out, nothing more.

The driver bounds the calls queued to each actor (selfplay.max_pending_calls), so finished
games never pile up in the object store faster than the learner takes them.
"""
from __future__ import annotations

import ray
import torch

from selfplay.config import build_run_config



@ray.remote(max_restarts=0)
class SelfPlayActor:
    def __init__(self, cfg_dict: dict, seed: int, threads: int, device: str = "cpu", server=None):
        """`server`: the inference server's handle (selfplay.inference: server), else None."""
        torch.set_num_threads(threads)
        from selfplay.inference import RayService
        from selfplay.worker import SelfPlayWorker

        self.service = None if server is None else RayService(server)
        self.worker = SelfPlayWorker(build_run_config(cfg_dict), seed, device, self.service)

    def node(self) -> str:
        """The Ray node this actor runs on (the driver logs where the games come from)."""
        return ray.get_runtime_context().get_node_id()

    def play(self, weights, version: int, exit_index: int, moves: int, server=None):
        """`weights` is None when the actor already has `version` (saves a transfer), and
        always with an inference server, which holds them; `server` is the driver's current
        server (a new one after the last died)."""
        from selfplay.inference import ServerLost

        if server is not None and self.service is not None:
            self.service.handle = server
        if weights is not None or self.service is not None:
            self.worker.set_weights(weights, version)
        self.worker.set_exit(exit_index)
        try:
            return self.worker.play(moves)
        except ServerLost:
            self.worker.drop_searches()  # the lost step's leaves are pending in every tree
            raise


@ray.remote(max_restarts=0)
class EvalActor:
    """Gating and anchor matches, off the self-play actors so both go on at once."""

    def __init__(self, cfg_dict: dict, threads: int):
        torch.set_num_threads(threads)
        self.cfg = build_run_config(cfg_dict)

    def gate(self, weights_a, weights_b, games: int, seed: int, first_pair: int, simulations: int):
        from dataclasses import replace

        from selfplay.gating import play_network_match

        c = self.cfg
        mcts = replace(c.mcts, simulations=simulations)
        return play_network_match(c.game, c.net, mcts, weights_a, weights_b, games,
                                  c.gating.concurrent_games, seed, first_pair)

    def anchor(self, weights, spec: str, games: int, seed: int, simulations: int):
        from dataclasses import replace

        from selfplay.anchors import play_anchor_match

        c = self.cfg
        return play_anchor_match(c.game, c.net, replace(c.mcts, simulations=simulations), weights,
                                 spec, games, seed)
