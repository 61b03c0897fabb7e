"""A policy-value network behind DPV-MCTS, under one exit mode and budget."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from dpv.config import GameConfig, MCTSConfig, from_dict
from dpv.games import make_game
from dpv.games.base import GameState
from dpv.mcts import MCTS, SearchResult, Tree, make_evaluator, run_searches, select_action, temperature_for_move
from dpv.mcts.tree import NO_NODE
from dpv.nets.policy_value import AuxPrediction, PolicyValueNet, has_aux, predict_aux
from dpv.players.base import BatchPlayer, MoveInfo, Player

# spec key -> MCTSConfig field
SPEC_FIELDS = {
    "mode": "exit_mode", "n_ref": "n_ref", "tau0": "tau0", "alpha": "alpha", "exit": "exit",
    "sims": "simulations", "c_puct": "c_puct", "fpu": "fpu", "leaves": "leaves_per_call",
    "temperature": "temperature", "temperature_moves": "temperature_moves",
    "budget_end": "budget_end",
}
PV_LENGTH = 10  # moves of the principal variation reported per search


def principal_variation(tree: Tree, first: int, length: int = PV_LENGTH) -> list[int]:
    """The move chosen at the root, then the most visited reply below it, and so on."""
    pv = [first]
    node = tree.child_of(tree.root, first) if tree.root != NO_NODE else NO_NODE
    while node != NO_NODE and len(pv) < length and tree.expanded(node):
        sl = tree.children(node)
        visits = tree.visits[sl]
        if len(visits) == 0 or visits.max() <= 0:
            break
        node = sl.start + int(np.argmax(visits))
        pv.append(int(tree.action[node]))
    return pv


class NetPlayer(Player, BatchPlayer):
    """Searches every move with its own tree per game (reused across moves through
    `notify_move`). As a `Player` it plays one game (tree 0); as a `BatchPlayer` it plays
    games 0..n-1 at once, all their searches stepped together so one network call carries
    the leaves of every tree.

    Plays greedily on visit counts unless the config gives temperature moves; root noise
    only when asked (arena play is usually noise-free)."""

    def __init__(self, net: Any, game_cfg: GameConfig, cfg: MCTSConfig, seed: int = 0,
                 device: str = "cpu", name: str | None = None, add_noise: bool = False):
        self.name = name or f"net({cfg.exit_mode})"
        self.cfg = cfg
        self.game = make_game(game_cfg)
        self.evaluator = make_evaluator(net, cfg, device)
        self.add_noise = add_noise
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._trees = [self._new_tree(0)]
        self.last_move = MoveInfo()
        self.last_result: SearchResult | None = None

    @classmethod
    def from_spec(cls, path: str, game_cfg: GameConfig, opts: dict[str, Any], seed: int = 0,
                  device: str = "cpu", name: str | None = None) -> NetPlayer:
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

    def _new_tree(self, game: int) -> MCTS:
        rng = np.random.default_rng(self._seed + 1 if game == 0 else [self._seed + 1, game])
        return MCTS(self.game, self.cfg, self.evaluator, rng)

    @property
    def mcts(self) -> MCTS:
        """The tree of the game played through the `Player` protocol."""
        return self._trees[0]

    def _search(self, games: Sequence[int], states: Sequence[GameState]) -> list[tuple[int, MoveInfo]]:
        t0 = time.perf_counter()
        trees = [self._trees[g] for g in games]
        results = run_searches(trees, states, self.evaluator, self.add_noise)
        seconds = (time.perf_counter() - t0) / max(len(results), 1)
        aux = self.position_aux(states)  # after the clock: reporting, not search
        out = []
        for i, (tree, state, r) in enumerate(zip(trees, states, results)):
            action = select_action(r, temperature_for_move(self.cfg, len(state.history())), self._rng)
            out.append((action, MoveInfo(
                seconds=seconds, flops=r.flops, simulations=r.simulations,
                exit_histogram=[int(c) for c in r.exit_histogram], budget_flops=r.budget_flops,
                root_value=r.value, visits=r.visits,
                principal_variation=principal_variation(tree.tree, action),
                predicted_score=None if aux is None else aux[i].score)))
        if results:
            self.last_result = results[-1]
        return out

    def position_aux(self, states: Sequence[GameState]) -> list[AuxPrediction] | None:
        """Ownership and score of each position from the deepest exit's aux heads (one
        batched forward, not charged to any search); None when the network has none."""
        net = self.evaluator.net
        if not isinstance(net, PolicyValueNet) or not has_aux(net):
            return None
        return predict_aux(net, states)

    # ---- Player: one game
    def reset(self) -> None:
        self._trees[0].reset()

    def select_move(self, state: GameState) -> int:
        action, self.last_move = self._search([0], [state])[0]
        return action

    def notify_move(self, state: GameState, action: int) -> None:
        self._trees[0].advance(action)

    # ---- BatchPlayer: games 0..n-1
    def new_games(self, n: int) -> None:
        for tree in self._trees[:n]:
            tree.reset()
        self._trees += [self._new_tree(g) for g in range(len(self._trees), n)]

    def select_moves(self, games: Sequence[int],
                     states: Sequence[GameState]) -> list[tuple[int, MoveInfo]]:
        return self._search(games, states)

    def notify_game_move(self, game: int, state: GameState, action: int) -> None:
        self._trees[game].advance(action)

    def close(self) -> None:
        pass
