"""Stand-in evaluators on the same protocol as `dpv.evaluator.BatchedEvaluator`:
a zero-cost uniform one (to time the tree alone) and random rollouts (a network-free
search that still plays sensibly), plus `make_evaluator` for a network under an exit mode.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dpv.config import MCTSConfig
from dpv.evaluator import BatchedEvaluator, Evaluation, Evaluator
from dpv.exits import make_exit_policy
from dpv.games.base import GameState
from dpv.nets.multi_exit import MultiExitNet


def _uniform(legal_mask: np.ndarray) -> np.ndarray:
    m = legal_mask.astype(np.float32)
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)


class UniformEvaluator(Evaluator):
    """Uniform prior over legal moves, value 0, one exit that costs nothing.

    It reads nothing from the position, so by default it asks for no observation planes
    (`wants_planes`) and no legal-move mask (`wants_legal`: given an all-True mask, its
    uniform row becomes uniform over the legal moves when the tree renormalises it); pass
    wants_planes=True to time the search with plane building and mask.

    Given the all-True mask, its policy is a read-only broadcast of one value: nothing is
    allocated per evaluation."""

    def __init__(self, wants_planes: bool = False):
        self.wants_planes = wants_planes
        self.wants_legal = wants_planes
        self._cache: dict[tuple[int, ...], Evaluation] = {}

    def evaluate(self, planes: np.ndarray | None, legal_mask: np.ndarray,
                 budget_fraction: np.ndarray | None = None, max_exit: np.ndarray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        shape = legal_mask.shape
        if legal_mask.strides == (0, 0):  # the driver's all-True mask (wants_legal False)
            out = self._cache.get(shape)
            if out is None:  # read-only, so one set of rows per shape serves every call
                n, a = shape
                out = self._cache[shape] = Evaluation(
                    *(np.broadcast_to(x, sh) for x, sh in (
                        (np.float32(1.0 / a), shape), (np.float32(0), (n,)),
                        (np.int64(0), (n,)), (0.0, (n,)))))
            return out
        n = shape[0]
        return Evaluation(_uniform(legal_mask), np.zeros(n, np.float32),
                          np.zeros(n, np.int64), np.zeros(n))


class RolloutEvaluator(Evaluator):
    """Uniform prior; value = mean result of random playouts to the end of the game.

    The state plays itself out (`GameState.playout`), so an adapter can run the playout on
    its engine's own state, without observation planes or history bookkeeping."""

    wants_states = True
    wants_planes = False

    def __init__(self, rollouts: int = 1, rng: np.random.Generator | None = None):
        self.rollouts = rollouts
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def _playout(self, state: GameState) -> float:
        return float(state.playout(self.rng)[state.current_player()])

    def evaluate(self, planes: np.ndarray | None, legal_mask: np.ndarray,
                 budget_fraction: np.ndarray | None = None, max_exit: np.ndarray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        if states is None:
            raise ValueError("RolloutEvaluator needs the leaf states (wants_states)")
        n = legal_mask.shape[0]
        values = np.array([np.mean([self._playout(st) for _ in range(self.rollouts)])
                           for st in states], dtype=np.float32)
        return Evaluation(_uniform(legal_mask), values, np.zeros(n, np.int64), np.zeros(n))


def make_evaluator(net: MultiExitNet, cfg: MCTSConfig, device: str = "cpu") -> BatchedEvaluator:
    """The network evaluator a search config asks for (exit policy from its exit mode)."""
    policy = make_exit_policy(cfg.exit_mode, exit=cfg.exit, tau0=cfg.tau0, alpha=cfg.alpha)
    return BatchedEvaluator(net, policy, device)
