"""Step many search trees together: one network call per step for all their pending leaves.

Each tree contributes up to `leaves_per_call` leaves (virtual loss keeps them apart), each
row carries its own tree's budget fraction r and exit cap, and the evaluations go back to
the tree that asked. Batching across games, not a faster tree, is what makes self-play fast.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dpv.games.base import GameState
from dpv.mcts.search import MCTS, Leaf, SearchResult


_ALL_LEGAL: dict[tuple[int, int], np.ndarray] = {}  # read-only all-True masks, by shape


def _all_legal(n: int, num_actions: int) -> np.ndarray:
    mask = _ALL_LEGAL.get((n, num_actions))
    if mask is None:
        mask = _ALL_LEGAL[(n, num_actions)] = np.broadcast_to(np.True_, (n, num_actions))
    return mask


def _batch_inputs(leaves: list[Leaf], num_actions: int, want_planes: bool, want_legal: bool):
    n = len(leaves)
    if want_legal:
        mask = np.zeros((n, num_actions), dtype=bool)
        for i, leaf in enumerate(leaves):
            legal = leaf.legal = np.asarray(leaf.state.legal_actions(), dtype=np.int64)
            mask[i, legal] = True
    else:  # the evaluator ignores the mask; the tree renormalises over legal moves anyway
        mask = _all_legal(n, num_actions)
    planes = None
    if want_planes:
        first = leaves[0].state.observation()
        planes = np.empty((n,) + first.shape, dtype=np.float32)
        planes[0] = first
        for i in range(1, n):
            planes[i] = leaves[i].state.observation()
    fractions = np.array([leaf.fraction for leaf in leaves], dtype=np.float64)
    max_exit = np.array([leaf.max_exit for leaf in leaves], dtype=np.int64)
    return planes, mask, fractions, max_exit


def run_searches(searches: Sequence[MCTS], states: Sequence[GameState], evaluator,
                 add_noise: bool | Sequence[bool] = False) -> list[SearchResult]:
    """Search `states[i]` with `searches[i]`, all trees stepped together; one
    `evaluator.evaluate` call per step carries every tree's pending leaves.

    Evaluators that set `wants_states = True` (rollouts) also get the leaf states, those
    that set `wants_planes = False` get no observation planes, and those that set
    `wants_legal = False` (their policy does not depend on the legal moves, e.g. uniform)
    get an all-True mask: the tree renormalises priors over the legal moves at expansion
    either way, and then need not list a leaf's legal moves until it is passed through."""
    if len(searches) != len(states):
        raise ValueError("one state per search")
    noise = [add_noise] * len(searches) if isinstance(add_noise, bool) else list(add_noise)
    for s, st, nz in zip(searches, states, noise):
        s.begin(st, nz)
    want_states = getattr(evaluator, "wants_states", False)
    want_planes = getattr(evaluator, "wants_planes", True)
    want_legal = getattr(evaluator, "wants_legal", True)
    active = [s for s in searches if not s.done()]
    while active:
        owners: list[MCTS] = []
        leaves: list[Leaf] = []
        spans: list[tuple[int, int]] = []  # rows of each owner, in order
        progress = 0
        for s in active:
            before = s.simulations
            got = s.gather()
            progress += len(got) + s.simulations - before
            if got:
                owners.append(s)
                spans.append((len(leaves), len(leaves) + len(got)))
                leaves.extend(got)
        if leaves:
            planes, mask, fractions, max_exit = _batch_inputs(
                leaves, owners[0].game.num_actions, want_planes, want_legal)
            if want_states:
                ev = evaluator.evaluate(planes, mask, fractions, max_exit,
                                        states=[leaf.state for leaf in leaves])
            else:
                ev = evaluator.evaluate(planes, mask, fractions, max_exit)
            if len(owners) == 1:  # one tree this step: its rows are the whole batch
                owners[0].absorb(leaves, ev.policy, ev.value, ev.exit_index, ev.flops)
            else:
                for s, (lo, hi) in zip(owners, spans):
                    s.absorb(leaves[lo:hi], ev.policy[lo:hi], ev.value[lo:hi],
                             ev.exit_index[lo:hi], ev.flops[lo:hi])
        elif progress == 0:
            raise RuntimeError("search made no progress (no leaves, no terminal visits)")
        active = [s for s in active if not s.done()]
    return [s.finish() for s in searches]
