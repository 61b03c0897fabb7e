"""A policy-value network behind DPV-MCTS, under one exit mode and budget."""
from __future__ import annotations

import time

import numpy as np

from dpv.config import GameConfig, MCTSConfig, from_dict
from dpv.games import make_game
from dpv.games.base import GameState
from dpv.mcts import MCTS, make_evaluator, select_action, temperature_for_move
from dpv.players.base import MoveInfo

# spec key -> MCTSConfig field
SPEC_FIELDS = {
    "mode": "exit_mode", "n_ref": "n_ref", "tau0": "tau0", "alpha": "alpha", "exit": "exit",
    "sims": "simulations", "c_puct": "c_puct", "fpu": "fpu", "leaves": "leaves_per_call",
    "temperature": "temperature", "temperature_moves": "temperature_moves",
}


class NetPlayer:
    """Searches every move with its own tree (reused across moves through `notify_move`).

    Plays greedily on visit counts unless the config gives temperature moves; root noise
    only when asked (arena play is usually noise-free)."""

    def __init__(self, net, game_cfg: GameConfig, cfg: MCTSConfig, seed: int = 0,
                 device: str = "cpu", name: str | None = None, add_noise: bool = False):
        self.name = name or f"net({cfg.exit_mode})"
        self.cfg = cfg
        self.game = make_game(game_cfg)
        self.evaluator = make_evaluator(net, cfg, device)
        self._rng = np.random.default_rng(seed)
        self.mcts = MCTS(self.game, cfg, self.evaluator, np.random.default_rng(seed + 1))
        self.add_noise = add_noise
        self.last_move = MoveInfo()
        self.last_result = None

    @classmethod
    def from_spec(cls, path: str, game_cfg: GameConfig, opts: dict, seed: int = 0,
                  device: str = "cpu", name: str | None = None) -> "NetPlayer":
        """Options are `dpv.players.spec.NET_KEYS`; the checkpoint must be for `game_cfg`."""
        from dpv.checkpoint import load_policy_value

        opts = dict(opts)
        add_noise = bool(opts.pop("noise", False))
        fields = {SPEC_FIELDS[k]: v for k, v in opts.items()}
        fields.setdefault("temperature_moves", 0)
        mode = fields.get("exit_mode", "fixed")
        if mode != "fixed" and "n_ref" not in fields:
            fields["n_ref"] = fields.get("simulations", MCTSConfig.simulations)
        cfg = from_dict(MCTSConfig, fields, "player")
        net, _ = load_policy_value(path, device, expect_game=game_cfg)
        label = name or f"net({path},{mode}" + (f",n_ref={cfg.n_ref})" if mode != "fixed" else ")")
        return cls(net, game_cfg, cfg, seed=seed, device=device, name=label, add_noise=add_noise)

    def reset(self) -> None:
        self.mcts.reset()

    def select_move(self, state: GameState) -> int:
        t0 = time.perf_counter()
        result = self.mcts.search(state, self.add_noise)
        temp = temperature_for_move(self.cfg, len(state.history()))
        action = select_action(result, temp, self._rng)
        self.last_result = result
        self.last_move = MoveInfo(
            seconds=time.perf_counter() - t0, flops=result.flops, simulations=result.simulations,
            exit_histogram=[int(c) for c in result.exit_histogram],
            extra={"value": result.value, "budget_flops": result.budget_flops})
        return action

    def notify_move(self, state: GameState, action: int) -> None:
        self.mcts.advance(action)

    def close(self) -> None:
        pass
