"""A search tree stored as flat arrays indexed by node (no Python object per child).

An expanded node's children occupy one contiguous block `first_child .. first_child + n`,
so PUCT over a node's children is one vectorised expression over array slices. Statistics
of the edge parent -> child live at the child's index. `value_sum` is from the view of the
player who made the move into the node (`mover`), which is the view its parent selects with.
Game states are kept only for the root and the nodes a selection has passed through (and
for a leaf only while its evaluation is pending, in its `Leaf`): a leaf reached once costs
one clone, freed at once, and a node passed through gets its state rebuilt from its parent's.
Slots past `size` always hold default values, so allocating children is just a bump of
`size`; `q` caches value_sum / visits (fpu while unvisited) and `u` caches
prior / (1 + visits), so PUCT over a node's children is `q + c * sqrt(N) * u`: two array
operations. Whoever changes visits or priors keeps `u` in step (`refresh_u`).

Expansion is deferred: an evaluated node keeps its evaluation in `deferred` (policy row and,
when known, its legal actions) and gets its children the first time a selection passes
through it. Most leaves of a search are reached once, so most never pay for children.
"""
from __future__ import annotations

import math

import numpy as np

from dpv.games.base import GameState

NO_NODE = -1
_ARRAYS = ("visits", "value_sum", "q", "u", "prior", "parent", "action", "first_child",
           "num_children", "mover", "to_move", "terminal", "terminal_value", "raw_value")
_OWN = tuple(n for n in _ARRAYS if n not in ("q", "u"))  # q and u are columns of `uq`


class Tree:
    __slots__ = ("visits", "value_sum", "q", "u", "prior", "parent", "action", "first_child",
                 "num_children", "mover", "to_move", "terminal", "terminal_value", "raw_value",
                 "uq", "states", "deferred", "views", "size", "root", "fpu")

    def __init__(self, capacity: int = 1024, fpu: float = 0.0):
        self.fpu = fpu
        # u and q side by side: PUCT over a node's children is one product uq[s:e] @ (c, 1)
        self.uq = np.zeros((capacity, 2))
        self.uq[:, 1] = fpu
        self.u = self.uq[:, 0]  # prior / (1 + visits)
        self.q = self.uq[:, 1]
        self.visits = np.zeros(capacity)  # float: virtual loss adds fractional visits
        self.value_sum = np.zeros(capacity)
        self.prior = np.zeros(capacity)
        self.parent = np.full(capacity, NO_NODE, dtype=np.int64)
        self.action = np.full(capacity, NO_NODE, dtype=np.int64)
        self.first_child = np.full(capacity, NO_NODE, dtype=np.int64)
        self.num_children = np.zeros(capacity, dtype=np.int64)
        self.mover = np.zeros(capacity, dtype=np.int64)  # player whose move led here
        self.to_move = np.zeros(capacity, dtype=np.int64)  # player to move at the node
        self.terminal = np.zeros(capacity, dtype=bool)
        self.terminal_value = np.zeros(capacity)  # result for to_move, when terminal
        self.raw_value = np.zeros(capacity)  # the network's value for to_move, once evaluated
        self.states: dict[int, GameState] = {}
        # evaluated, not yet expanded: (policy batch, row, legal actions or None)
        self.deferred: dict[int, tuple] = {}
        # expanded node -> (first child, u view, q view) of its children: selection's
        # working set, built on first use; views die with the arrays (growth, reroot, clear)
        self.views: dict[int, tuple] = {}
        self.size = 0
        self.root = NO_NODE

    @property
    def capacity(self) -> int:
        return self.visits.shape[0]

    def _grow(self, needed: int) -> None:
        cap = self.capacity
        if needed <= cap:
            return
        new = max(needed, 2 * cap)
        self.views = {}
        for name in _OWN:
            old = getattr(self, name)
            arr = np.full(new, self._default(name), dtype=old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)
        uq = np.zeros((new, 2))
        uq[:, 1] = self.fpu
        uq[:cap] = self.uq
        self.uq, self.u, self.q = uq, uq[:, 0], uq[:, 1]

    def _default(self, name: str):
        return NO_NODE if name in ("parent", "action", "first_child") else (
            self.fpu if name == "q" else 0)

    def _clear(self, start: int, end: int) -> None:
        for name in _ARRAYS:
            getattr(self, name)[start:end] = self._default(name)

    def clear(self) -> None:
        """Forget every node but keep the arrays (no reallocation between games)."""
        self._clear(0, self.size)
        self.states = {}
        self.deferred = {}
        self.views = {}
        self.size = 0
        self.root = NO_NODE

    def new_root(self, state: GameState) -> int:
        """Forget everything and make `state` (already a private copy) the root."""
        self.clear()
        self.root = self._alloc(1)
        r = self.root
        self.parent[r] = NO_NODE
        self.to_move[r] = state.current_player()
        self.mover[r] = 1 - self.to_move[r]  # two-player: the root's "mover" is the opponent
        self.states[r] = state
        return r

    def _alloc(self, n: int) -> int:
        start = self.size
        if start + n > self.visits.shape[0]:
            self._grow(start + n)
        self.size = start + n
        return start

    def expanded(self, node: int) -> bool:
        return self.first_child[node] != NO_NODE

    def expand(self, node: int, actions: np.ndarray, priors: np.ndarray) -> None:
        """Give `node` one child per legal action, with priors already renormalised."""
        n = len(actions)
        s = self._alloc(n)
        e = s + n
        self.first_child[node] = s
        self.num_children[node] = n
        self.action[s:e] = actions
        self.prior[s:e] = priors
        self.u[s:e] = priors  # no visits yet
        self.parent[s:e] = node
        self.mover[s:e] = self.to_move[node]

    def expand_deferred(self, node: int) -> bool:
        """Give `node` the children its stored evaluation asks for; False if it has none."""
        ev = self.deferred.pop(node, None)
        if ev is None:
            return False
        policy, row, legal = ev
        if legal is None:
            legal = self.states[node].legal_actions()
        acts = np.asarray(legal, dtype=np.int64)
        p = np.asarray(policy[row], dtype=np.float64)[acts]
        total = p.sum()
        if total > 0:
            p /= total
        else:  # no mass on any legal move: fall back to uniform
            p.fill(1.0 / len(acts))
        self.expand(node, acts, p)
        return True

    def expand_many(self, nodes: np.ndarray, legal: list[np.ndarray], policy: np.ndarray) -> None:
        """Expand nodes[i] with children legal[i], priors policy[i, legal[i]] renormalised
        over the legal moves (uniform if the policy gives them no mass); one block for all."""
        lens = np.fromiter((len(a) for a in legal), np.int64, len(legal))
        total = int(lens.sum())
        s = self._alloc(total)
        e = s + total
        offsets = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1], out=offsets[1:])
        acts = np.concatenate(legal) if len(legal) > 1 else legal[0]
        rows = np.repeat(np.arange(len(lens)), lens)
        p = np.asarray(policy, dtype=np.float64)[rows, acts]
        sums = np.add.reduceat(p, offsets)
        empty = sums <= 0
        if empty.any():  # no mass on any legal move: fall back to uniform
            p[np.repeat(empty, lens)] = 1.0
            sums[empty] = lens[empty]
        self.prior[s:e] = p / np.repeat(sums, lens)
        self.u[s:e] = self.prior[s:e]
        self.first_child[nodes] = s + offsets
        self.num_children[nodes] = lens
        self.action[s:e] = acts
        self.parent[s:e] = np.repeat(nodes, lens)
        self.mover[s:e] = np.repeat(self.to_move[nodes], lens)

    def refresh_u(self, nodes) -> None:
        """Recompute the cached prior / (1 + visits) of `nodes` (an index or a slice)."""
        self.u[nodes] = self.prior[nodes] / (self.visits[nodes] + 1.0)

    def children(self, node: int) -> slice:
        s = int(self.first_child[node])
        return slice(s, s + int(self.num_children[node]))

    def select_child(self, node: int, c_puct: float) -> int:
        """PUCT: argmax Q + c_puct * P * sqrt(N_parent) / (1 + N); unvisited Q = fpu."""
        s = int(self.first_child[node])
        e = s + int(self.num_children[node])
        scale = c_puct * math.sqrt(max(self.visits[node], 1.0))
        score = self.prior[s:e] * scale
        score /= self.visits[s:e] + 1.0
        score += self.q[s:e]
        return s + int(score.argmax())

    def child_of(self, node: int, action: int) -> int:
        if not self.expanded(node):
            return NO_NODE
        sl = self.children(node)
        hits = np.flatnonzero(self.action[sl] == action)
        return sl.start + int(hits[0]) if len(hits) else NO_NODE

    def reroot(self, node: int) -> None:
        """Keep only the subtree under `node` (now the root), compacted to the front."""
        order = [node]
        head = 0
        while head < len(order):
            x = order[head]
            head += 1
            if self.first_child[x] != NO_NODE:
                s = int(self.first_child[x])
                order.extend(range(s, s + int(self.num_children[x])))
        old = np.asarray(order, dtype=np.int64)
        remap = np.full(self.size, NO_NODE, dtype=np.int64)
        remap[old] = np.arange(len(old))
        m = len(old)
        for name in ("visits", "value_sum", "q", "u", "prior", "action", "num_children", "mover",
                     "to_move", "terminal", "terminal_value", "raw_value"):
            arr = getattr(self, name)
            arr[:m] = arr[old]
        fc = self.first_child[old]
        self.first_child[:m] = np.where(fc == NO_NODE, NO_NODE, remap[np.maximum(fc, 0)])
        par = self.parent[old]
        self.parent[:m] = np.where(par == NO_NODE, NO_NODE, remap[np.maximum(par, 0)])
        self.parent[0] = NO_NODE
        self.states = {int(remap[i]): st for i, st in self.states.items() if remap[i] != NO_NODE}
        self.deferred = {int(remap[i]): ev for i, ev in self.deferred.items()
                         if remap[i] != NO_NODE}
        self.views = {}
        self._clear(m, self.size)
        self.size = m
        self.root = 0
