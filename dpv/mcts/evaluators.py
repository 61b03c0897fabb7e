"""Stand-in evaluators on the same protocol as `dpv.evaluator.BatchedEvaluator`:
a zero-cost uniform one (to time the tree alone) and random rollouts (a network-free
search that still plays sensibly), plus `make_evaluator` for a network under an exit mode.
"""
from __future__ import annotations

import numpy as np

from dpv.config import MCTSConfig
from dpv.evaluator import BatchedEvaluator, Evaluation
from dpv.exits import make_exit_policy


def _uniform(legal_mask: np.ndarray) -> np.ndarray:
    m = legal_mask.astype(np.float32)
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1.0)


class UniformEvaluator:
    """Uniform prior over legal moves, value 0, one exit that costs nothing.

    It reads nothing from the position, so by default it asks for no observation planes
    (`wants_planes`) and no legal-move mask (`wants_legal`: given an all-True mask, its
    uniform row becomes uniform over the legal moves when the tree renormalises it); pass
    wants_planes=True to time the search with plane building and mask.

    Given the all-True mask, its policy is a read-only broadcast of one value: nothing is
    allocated per evaluation."""

    num_exits = 1

    def __init__(self, wants_planes: bool = False):
        self.wants_planes = wants_planes
        self.wants_legal = wants_planes
        self._cache: dict[tuple[int, int], Evaluation] = {}

    def exit_cost(self, k: int) -> float:
        return 0.0

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None) -> Evaluation:
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


class RolloutEvaluator:
    """Uniform prior; value = mean result of random playouts to the end of the game.

    Uses the OpenSpiel state underneath when there is one (`spiel_state`): a playout then
    costs no observation planes or history bookkeeping."""

    num_exits = 1
    wants_states = True
    wants_planes = False

    def __init__(self, rollouts: int = 1, rng: np.random.Generator | None = None):
        self.rollouts = rollouts
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def exit_cost(self, k: int) -> float:
        return 0.0

    def _playout(self, state) -> float:
        player = state.current_player()
        raw = getattr(state, "spiel_state", None)
        if raw is not None:
            s = raw.clone()
            rand = self.rng.random
            while not s.is_terminal():
                legal = s.legal_actions()
                s.apply_action(legal[int(rand() * len(legal))])
            return float(s.returns()[player])
        s = state.clone()
        while not s.is_terminal():
            legal = s.legal_actions()
            s.apply(legal[int(self.rng.integers(len(legal)))])
        return float(s.returns()[player])

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None,
                 states=None) -> Evaluation:
        if states is None:
            raise ValueError("RolloutEvaluator needs the leaf states (wants_states)")
        n = legal_mask.shape[0]
        values = np.array([np.mean([self._playout(st) for _ in range(self.rollouts)])
                           for st in states], dtype=np.float32)
        return Evaluation(_uniform(legal_mask), values, np.zeros(n, np.int64), np.zeros(n))


def make_evaluator(net, cfg: MCTSConfig, device: str = "cpu") -> BatchedEvaluator:
    """The network evaluator a search config asks for (exit policy from its exit mode)."""
    policy = make_exit_policy(cfg.exit_mode, exit=cfg.exit, tau0=cfg.tau0, alpha=cfg.alpha)
    return BatchedEvaluator(net, policy, device)
