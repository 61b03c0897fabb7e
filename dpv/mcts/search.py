"""DPV-MCTS on one game tree: PUCT, virtual loss, budgets over exits, subtree reuse.

An `MCTS` object owns one tree for one game. It never calls the network itself: it hands
out pending leaves (`gather`) and takes their evaluations back (`absorb`), so the driver
`run_searches` (below) can put the leaves of many trees into one network call; batching
across games, not a faster tree, is what makes self-play fast. `MCTS.search` runs that
driver on its tree alone.

Budget modes (thesis Tables 6.2/6.3, `MCTSConfig.exit_mode`):
  fixed           `simulations` evaluations at exit `exit`;
  fixed_budget    exit `exit`, as many evaluations as B = n_ref * FLOPs(deepest) pays for;
  dynamic_static  the exit policy stops at confidence >= tau0, under the same budget;
  dynamic         the threshold is tau0 + alpha * r, r = spent / B of this search.
Each evaluation charges the FLOPs the evaluator reports for its row. Before a leaf is sent,
its worst-case cost is reserved, so the budget is never exceeded. The end of a dynamic
search's budget follows `MCTSConfig.budget_end`:
  cap      (default) each leaf is told the deepest exit still affordable (`max_exit`), so
           the last evaluations are forced shallow; the search ends when not even the
           cheapest exit fits (at most one cheapest evaluation's FLOPs stay unspent);
  reserve  every leaf may go to the deepest exit (its cost is reserved), so no evaluation
           is ever forced shallow; the search ends when the deepest exit no longer fits
           (up to one deepest evaluation's FLOPs stay unspent: 1/n_ref of B).
With n_ref = 0 the budgeted modes fall back to `simulations`, with r = simulations done /
simulations.

Values are from the view of the player to move; two-player zero-sum games are assumed.

Speed (benchmarks/mcts_speed.py; ~10 us per simulation on 9x9 with a free evaluator): a
leaf keeps no game state once evaluated and is expanded only when a selection passes
through it (most leaves never are); PUCT over a node's children is one product over
(P / (1 + N), Q) pairs; N and W live in Python lists while a search runs, so virtual loss
and backup are plain loops over a short path; evaluators that need no legal-move mask
(`wants_legal = False`) make leaves list no legal moves.

Search knows games only through `dpv.games.base` and networks only through the `Evaluator`
protocol (`dpv.evaluator`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dpv.budget import Budget
from dpv.config import MCTSConfig
from dpv.errors import DPVError
from dpv.evaluator import Evaluator
from dpv.games.base import Game, GameState
from dpv.mcts import gumbel
from dpv.mcts.tree import NO_NODE, Tree


@dataclass(frozen=True)
class ExitCosts:
    """What an evaluator charges: FLOPs per exit it may stop at, and the full network's."""

    per_exit: np.ndarray  # (K,) FLOPs charged for an evaluation that stops at exit k
    deepest: float  # FLOPs of the deepest exit alone: B = n_ref * deepest

    @property
    def num_exits(self) -> int:
        return len(self.per_exit)

    @classmethod
    def of(cls, evaluator: Evaluator) -> ExitCosts:
        """What `evaluator` says each exit costs, and its full network's FLOPs."""
        per = np.array([evaluator.exit_cost(i) for i in range(evaluator.num_exits)],
                       dtype=np.float64)
        return cls(per, float(evaluator.deepest_flops()))


@dataclass(frozen=True)
class SearchLimit:
    """What one search may spend instead of its config's budget (a game clock's share of a
    move): a FLOPs budget B for the budgeted modes, a simulation count otherwise."""

    simulations: int | None = None
    budget_flops: float | None = None


@dataclass
class SearchResult:
    visits: np.ndarray  # (A,) root visit counts
    policy: np.ndarray  # (A,) visit distribution: the training target
    value: float  # root value, from the view of the player to move
    simulations: int  # simulations run in this search (network + terminal)
    flops: float  # FLOPs charged in this search
    exit_histogram: np.ndarray  # (K,) evaluations stopped at each exit
    budget_flops: float | None = None  # B of this search, None when unbudgeted
    exits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per evaluation, in order
    fractions: np.ndarray = field(default_factory=lambda: np.zeros(0))  # r sent with each evaluation
    action: int | None = None  # the move the search chose (Gumbel: the survivor); None: by visits


class Leaf:
    """A pending evaluation: the path from the root (virtual loss applied) and its request.
    `legal` (int64 legal actions) is filled by the driver when the evaluator wants a mask."""

    __slots__ = ("path", "state", "legal", "fraction", "max_exit", "reserved")

    def __init__(self, path: list[int], state: GameState, legal: np.ndarray | None,
                 fraction: float, max_exit: int, reserved: float):
        self.path = path
        self.state = state
        self.legal = legal
        self.fraction = fraction
        self.max_exit = max_exit
        self.reserved = reserved


def temperature_for_move(cfg: MCTSConfig, move_number: int) -> float:
    """cfg.temperature for the first `temperature_moves` moves, then greedy (0)."""
    return cfg.temperature if move_number < cfg.temperature_moves else 0.0


def select_action(result: SearchResult, temperature: float, rng: np.random.Generator) -> int:
    """The search's own choice where it made one (Gumbel root: the survivor of sequential
    halving, its noise the exploration); else greedy on visits when temperature is 0, else
    sample visits ** (1 / temperature)."""
    if result.action is not None:
        return result.action
    counts = result.visits if result.visits.sum() > 0 else result.policy
    if temperature <= 0:
        return int(np.argmax(counts))
    legal = np.flatnonzero(counts > 0)
    logw = np.log(counts[legal]) / temperature
    p = np.exp(logw - logw.max())
    return int(legal[rng.choice(len(legal), p=p / p.sum())])


class MCTS:
    """One game's search tree. Call `advance(action)` after every move played (either
    side) to reuse the subtree; `reset()` for a new game."""

    def __init__(self, game: Game, cfg: MCTSConfig, evaluator: Evaluator,
                 rng: np.random.Generator | None = None, costs: ExitCosts | None = None):
        self.game = game
        self.cfg = cfg
        self.evaluator = evaluator
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.costs = costs if costs is not None else ExitCosts.of(evaluator)
        k = self.costs.num_exits
        self._dynamic = cfg.exit_mode in ("dynamic", "dynamic_static")
        self._fixed_exit = cfg.exit % k
        self._budgeted = cfg.exit_mode != "fixed" and cfg.n_ref > 0
        self._reserve_deepest = self._dynamic and cfg.budget_end == "reserve"
        if self._budgeted and not self.costs.deepest > 0:
            raise DPVError(f"exit_mode {cfg.exit_mode!r} with n_ref={cfg.n_ref} needs an evaluator "
                           "that charges FLOPs; this one is free")
        self.tree = Tree(fpu=cfg.fpu)
        # the state of one search, set afresh by begin()
        self.budget: Budget | None = None
        self.simulations = 0  # evaluations and terminal visits so far
        self.flops = 0.0
        self.histogram = np.zeros(k, dtype=np.int64)  # evaluations stopped at each exit
        self._reserved = 0.0  # worst-case FLOPs of the leaves sent and not yet charged
        self._pending: set[int] = set()  # nodes whose evaluation is out
        self._exits: list[int] = []
        self._fractions: list[float] = []
        self._noise = False
        self._raw_root_prior: np.ndarray | None = None  # root priors before this search's noise
        self._max_sims = cfg.simulations
        self._sims = cfg.simulations  # this search's simulation count (a SearchLimit may set it)
        self._free_exit = k - 1 if self._dynamic else self._fixed_exit
        self._gumbel = cfg.root == "gumbel"
        self._halving: gumbel.SequentialHalving | None = None  # this search's, once the root is expanded
        # N and W of every node as Python lists while a search runs (see begin)
        self._vis: list[float] = []
        self._vsum: list[float] = []

    # ---- game-level API
    def reset(self) -> None:
        self.tree.clear()

    def advance(self, action: int) -> None:
        """`action` was played at the root: keep its subtree (or drop the tree)."""
        t = self.tree
        if t.root == NO_NODE:
            return
        child = t.child_of(t.root, action) if self.cfg.reuse_tree else NO_NODE
        if child == NO_NODE or (child not in t.states and child not in t.deferred):
            self.reset()  # never reached (or a terminal leaf): nothing worth keeping
        else:
            if child not in t.states:  # an evaluated leaf keeps no state: rebuild it
                t.states[child] = t.states[t.root].child(action)
            t.reroot(child)

    def search(self, state: GameState, add_noise: bool = False) -> SearchResult:
        return run_searches([self], [state], self.evaluator, add_noise)[0]

    # ---- driver API (run_searches)
    def begin(self, state: GameState, add_noise: bool, limit: SearchLimit | None = None) -> None:
        if state.is_terminal():
            raise DPVError("cannot search a terminal position")
        t = self.tree
        root_state = t.states.get(t.root)
        if root_state is None or root_state.history() != state.history():
            t.new_root(state.clone())  # keeps the arrays: no new allocation per game
        limit = limit or SearchLimit()
        self._sims = limit.simulations or self.cfg.simulations
        if limit.budget_flops is not None and self.cfg.exit_mode != "fixed":
            if not self.costs.deepest > 0:
                raise DPVError(f"a FLOPs limit for exit_mode {self.cfg.exit_mode!r} needs an "
                               "evaluator that charges FLOPs; this one is free")
            self.budget = Budget(limit.budget_flops)
        else:
            self.budget = (Budget.from_n_ref(self.cfg.n_ref, self.costs.deepest)
                           if self._budgeted else None)
        self._reserved = 0.0
        self._pending = set()
        self.simulations = 0
        self.flops = 0.0
        self.histogram = np.zeros(self.costs.num_exits, dtype=np.int64)
        self._exits = []
        self._fractions = []
        # a Gumbel root explores through its own noise: no Dirichlet noise there
        self._noise = add_noise and self.cfg.dirichlet_fraction > 0 and not self._gumbel
        self._raw_root_prior = None
        self._halving = None
        t.expand_deferred(t.root)  # a reused root that was evaluated but never passed through
        if t.expanded(t.root):
            self._apply_noise()
        if self.budget is not None:  # an unlimited tree of terminal visits must still end
            self._max_sims = int(self.budget.total // max(self.costs.per_exit.min(), 1e-300)) + 1
        else:
            self._max_sims = self._sims
        self._free_exit = self.costs.num_exits - 1 if self._dynamic else self._fixed_exit
        # N and W of every node as Python lists while the search runs: the per-node updates
        # of virtual loss and backup are plain list operations (several times cheaper than
        # numpy element access); finish() writes them back into the tree's arrays
        self._vis = t.visits[:t.size].tolist()
        self._vsum = t.value_sum[:t.size].tolist()

    def _fraction(self) -> float:
        if self.budget is not None:
            return self.budget.fraction
        return min(1.0, self.simulations / self._sims)

    def _afford(self) -> tuple[int, float] | None:
        """(max_exit, reserved cost) for one more evaluation now, or None if none fits."""
        if self.simulations + len(self._pending) >= self._max_sims:
            return None
        per = self.costs.per_exit
        if self.budget is None:
            return self._free_exit, 0.0
        left = self.budget.remaining - self._reserved
        if not self._dynamic:
            cost = per[self._fixed_exit]
            return (self._fixed_exit, cost) if cost <= left * (1 + 1e-12) else None
        if self._reserve_deepest:  # never cap: the final evaluations keep their full depth
            cost = per[-1]
            return (len(per) - 1, float(cost)) if cost <= left * (1 + 1e-12) else None
        fits = np.flatnonzero(per <= left * (1 + 1e-12))
        if len(fits) == 0:
            return None
        k = int(fits[-1])
        return k, float(per[k])

    def done(self) -> bool:
        if self._gumbel and self.tree.expanded(self.tree.root):
            return not self._pending and self._gumbel_request() is None
        return not self._pending and self._afford() is None

    def gather(self) -> list[Leaf]:
        """Select up to `leaves_per_call` new leaves (virtual loss on their paths); terminal
        leaves are backed up at once, at no cost. Written for speed: the tree's arrays are
        read element by element, numpy only for PUCT over a node's children."""
        if self._gumbel and self.tree.expanded(self.tree.root):
            return self._gather_gumbel()
        t = self.tree
        cfg = self.cfg
        vl = cfg.virtual_loss
        c_puct = cfg.c_puct
        sqrt = math.sqrt
        visits, value_sum = self._vis, self._vsum  # list mirrors (see begin)
        q, u, prior = t.q, t.u, t.prior
        first_child, num_children, action = t.first_child, t.num_children, t.action
        states, deferred, views = t.states, t.deferred, t.views
        terminal, to_move = t.terminal, t.to_move
        pending = self._pending
        root = t.root
        budget = self.budget
        max_sims = self._max_sims
        sims_cfg = self._sims
        weights = np.ones(2)
        leaves: list[Leaf] = []
        for _ in range(cfg.leaves_per_call):
            if budget is None:  # free evaluations: only the simulation count limits
                if self.simulations + len(pending) >= max_sims:
                    break
                k, cost = self._free_exit, 0.0
            else:
                request = self._afford()
                if request is None:
                    break
                k, cost = request
            path = [root]
            node = root
            while True:
                view = views.get(node)
                if view is None:
                    s = first_child.item(node)
                    if s < 0:
                        if node not in deferred:
                            break
                        if node not in states:  # passed through for the first time: keep its state
                            states[node] = states[path[-2]].child(action.item(node))
                        t.expand_deferred(node)
                        # expansion may grow the arrays: take the new ones
                        self._pad()
                        q, u, prior = t.q, t.u, t.prior
                        first_child, num_children, action = t.first_child, t.num_children, t.action
                        views, terminal, to_move = t.views, t.terminal, t.to_move
                        s = first_child.item(node)
                    view = views[node] = (s, t.uq[s:s + num_children.item(node)])
                s, uq_children = view
                n = visits[node]
                # PUCT, Q + c sqrt(N) P / (1 + N): u = P / (1 + N) and Q side by side, one product
                weights[0] = c_puct * sqrt(n) if n > 1.0 else c_puct
                node = s + int(uq_children.dot(weights).argmax())
                path.append(node)
            if terminal.item(node):  # known terminal: its result, at no cost
                self._backup_path(path, t.terminal_value.item(node), to_move.item(node), 0.0)
                self.simulations += 1
                continue
            if node in pending:  # collision: this tree has nothing new to offer now
                break
            if node == root:
                state = states[root]
            else:  # a new leaf. Its state is not kept: most leaves are never passed through,
                # and a freed state's memory is what the next clone reuses (hot, no page faults)
                state = states[path[-2]].child(action.item(node))
                player = to_move[node] = state.current_player()
                if state.is_terminal():
                    terminal[node] = True
                    value = t.terminal_value[node] = state.terminal_value()
                    self._backup_path(path, value, player, 0.0)
                    self.simulations += 1
                    continue
            if vl > 0:  # plain loops: paths are short, numpy calls are not free
                visits[root] += vl  # the root is nobody's child: only its N matters here
                for i in range(1, len(path)):
                    x = path[i]
                    nv = visits[x] + vl
                    visits[x] = nv
                    sv = value_sum[x] - vl
                    value_sum[x] = sv
                    q[x] = sv / nv
                    u[x] = prior.item(x) / (nv + 1.0)
            if cost:
                self._reserved += cost
            pending.add(node)
            if budget is None:
                fraction = self.simulations / sims_cfg
                if fraction > 1.0:
                    fraction = 1.0
            else:
                fraction = budget.fraction
            leaves.append(Leaf(path, state, None, fraction, k, cost))
        return leaves

    # ---- Gumbel root (cfg.root == "gumbel"; the arithmetic is dpv.mcts.gumbel's)
    def _start_halving(self) -> gumbel.SequentialHalving:
        """Sample the root's m actions; the halving shares what the search has left now that
        the root is expanded (its own evaluation came out of the same budget)."""
        t = self.tree
        sl = t.children(t.root)
        g = self.cfg.gumbel_scale * self.rng.gumbel(size=sl.stop - sl.start)
        budget = self.budget
        if budget is None:
            sims = max(self._sims - self.simulations, 0)
            self._halving = gumbel.SequentialHalving(g, gumbel.logits_of(t.prior[sl]),
                                                     self.cfg.gumbel_m, sims, 0.0, self.simulations)
        else:
            self._halving = gumbel.SequentialHalving(
                g, gumbel.logits_of(t.prior[sl]), self.cfg.gumbel_m,
                max(self._max_sims - self.simulations, 0), budget.remaining,
                self.simulations, budget.spent)
        return self._halving

    def _root_scores(self, h: gumbel.SequentialHalving) -> np.ndarray:
        """g + logits + sigma(completed Q) of every root child: halving's and the final pick's."""
        t, cfg = self.tree, self.cfg
        sl = t.children(t.root)
        visits = np.asarray(self._vis[sl])
        return h.gumbel + gumbel.improved_logits(
            t.prior[sl], t.q[sl], visits, float(t.raw_value[t.root]), cfg.gumbel_c_visit,
            cfg.gumbel_c_scale)

    def _gumbel_request(self) -> tuple[int, float] | None:
        """(max_exit, reserved cost) of one more root visit within the current phase's
        share, halving the survivors when a phase is spent; None when nothing fits now."""
        h = self._halving or self._start_halving()
        while True:
            request = self._afford()  # the whole search's limit comes first
            if request is None:
                return None
            fit = self._within_phase(h, request)
            if fit is not None:
                return fit
            if self._pending or h.last_phase:  # a phase ends once its evaluations are in
                return None
            h.halve(self._root_scores(h))

    def _within_phase(self, h: gumbel.SequentialHalving,
                      request: tuple[int, float]) -> tuple[int, float] | None:
        sims = self.simulations + len(self._pending) - h.sims_start
        if sims >= h.sims_end():
            return None
        budget = self.budget
        if budget is None:
            return request
        k, cost = request
        room = h.flops_start + h.flops_end() - budget.spent - self._reserved
        if cost <= room * (1 + 1e-12):
            return request
        if not self._dynamic:
            return None
        per = self.costs.per_exit
        fits = np.flatnonzero(per[:k + 1] <= room * (1 + 1e-12))  # a shallower exit still fits
        return (int(fits[-1]), float(per[fits[-1]])) if len(fits) else None

    def _gumbel_path(self, child: int) -> list[int]:
        """Root -> `child` -> the deterministic rule below it, down to a node not expanded."""
        t, cfg = self.tree, self.cfg
        path = [t.root, child]
        node = child
        while True:
            if not t.expanded(node):
                if node not in t.deferred:
                    return path
                if node not in t.states:  # passed through for the first time: keep its state
                    t.states[node] = t.states[path[-2]].child(int(t.action[node]))
                t.expand_deferred(node)
                self._pad()
            sl = t.children(node)
            node = sl.start + gumbel.interior_choice(
                t.prior[sl], t.q[sl], np.asarray(self._vis[sl]), float(t.raw_value[node]),
                cfg.gumbel_c_visit, cfg.gumbel_c_scale)
            path.append(node)

    def _gather_gumbel(self) -> list[Leaf]:
        """As `gather`, with the root's child set by sequential halving (round-robin over the
        phase's survivors) and the deterministic rule below it."""
        t = self.tree
        vl = self.cfg.virtual_loss
        visits, value_sum = self._vis, self._vsum
        root = t.root
        leaves: list[Leaf] = []
        while len(leaves) < self.cfg.leaves_per_call:
            request = self._gumbel_request()
            if request is None:
                break
            k, cost = request
            h = self._halving or self._start_halving()  # set by _gumbel_request
            path = self._gumbel_path(t.first_child.item(root) + h.next_child())
            node = path[-1]
            if node in self._pending:  # collision: nothing new below this child now
                break
            h.visited()
            state = None if t.terminal[node] else t.states[path[-2]].child(int(t.action[node]))
            if state is not None:
                t.to_move[node] = state.current_player()
                if state.is_terminal():
                    t.terminal[node] = True
                    t.terminal_value[node] = state.terminal_value()
            if state is None or t.terminal[node]:  # its result, at no cost
                self._backup_path(path, float(t.terminal_value[node]), int(t.to_move[node]), 0.0)
                self.simulations += 1
                continue
            if vl > 0:
                visits[root] += vl
                for x in path[1:]:
                    nv = visits[x] + vl
                    visits[x] = nv
                    value_sum[x] -= vl
                    t.q[x] = value_sum[x] / nv
                    t.u[x] = t.prior[x] / (nv + 1.0)
            self._reserved += cost
            self._pending.add(node)
            leaves.append(Leaf(path, state, None, self._fraction(), k, cost))
        return leaves

    def absorb(self, leaves: list[Leaf], policy: np.ndarray, value: np.ndarray,
               exit_index: np.ndarray, flops: np.ndarray) -> None:
        """Take this tree's evaluations back (row i answers leaves[i]): charge them, store
        them for expansion (deferred to the first selection through the leaf; the root at
        once), back up their values; all leaves of a step at once."""
        t = self.tree
        n = len(leaves)
        exit_index = np.asarray(exit_index, dtype=np.int64)
        if self.budget is not None:
            flops = np.asarray(flops, dtype=np.float64)
            reserved = np.fromiter((leaf.reserved for leaf in leaves), np.float64, n)
            over = flops > reserved * (1 + 1e-9) + 1e-6
            if over.any():
                i = int(np.argmax(over))
                raise DPVError(f"evaluator charged {flops[i]:.3g} FLOPs for a row capped at "
                               f"{reserved[i]:.3g}: it ignores max_exit or the search's exit")
            self.budget.charge(flops.sum())
            self._reserved -= reserved.sum()
            self.flops += float(flops.sum())
        else:
            self.flops += float(np.asarray(flops, dtype=np.float64).sum())
        k = len(self.histogram)
        if k == 1:
            if exit_index.any():
                raise DPVError("evaluator reported an exit this search does not have")
            self.histogram[0] += n
        else:
            self.histogram += np.bincount(exit_index, minlength=k)[:k]
        self._exits.extend(exit_index.tolist())
        self._fractions.extend([leaf.fraction for leaf in leaves])
        if policy.flags.writeable:  # our own copy: rows wait in the tree until expansion
            policy = np.array(policy, dtype=np.float64)
        values = np.asarray(value, dtype=np.float64)
        pending = self._pending
        deferred = t.deferred
        to_move = t.to_move
        vl = self.cfg.virtual_loss
        root = t.root
        # plain loops: a path is a few nodes, and a numpy call costs as much as several of
        # these element updates. The root, first on every path, took only its vl visits.
        visits, value_sum = self._vis, self._vsum
        q, u, prior, mover = t.q, t.u, t.prior, t.mover
        raw_value = t.raw_value  # v_hat of each evaluated node (Gumbel's value completion)
        dv = 1.0 - vl
        root_visits = visits[root]
        root_sum = value_sum[root]
        root_mover = mover.item(root)
        row_values: list[float] = values.tolist()
        for i, leaf in enumerate(leaves):
            path = leaf.path
            node = path[-1]
            pending.discard(node)
            deferred[node] = (policy, i, leaf.legal)  # row i, taken at expansion
            val = row_values[i]
            raw_value[node] = val
            player = to_move.item(node)
            root_visits += dv
            root_sum += val if root_mover == player else -val
            for j in range(1, len(path)):
                x = path[j]
                nv = visits[x] + dv
                visits[x] = nv
                sv = value_sum[x] + ((val if mover.item(x) == player else -val) + vl)
                value_sum[x] = sv
                q[x] = sv / nv
                u[x] = prior.item(x) / (nv + 1.0)
        visits[root] = root_visits
        value_sum[root] = root_sum
        q[root] = root_sum / root_visits
        u[root] = prior.item(root) / (root_visits + 1.0)
        self.simulations += n
        if root in deferred:
            t.expand_deferred(root)
            self._pad()
            if self._noise and self._raw_root_prior is None:
                self._apply_noise()

    def _backup_path(self, path: list[int], value: float, player: int, vl: float) -> None:
        """`value` is for `player`, at the end of `path`; each node's sum is kept for the
        player who moved into it. Also takes back the virtual loss `vl` on the path."""
        t = self.tree
        visits, value_sum = self._vis, self._vsum
        q, mover, u, prior = t.q, t.mover, t.u, t.prior
        dv = 1.0 - vl
        for x in path:
            nv = visits[x] + dv
            visits[x] = nv
            sv = value_sum[x] + ((value if mover[x] == player else -value) + vl)
            value_sum[x] = sv
            q[x] = sv / nv
            u[x] = prior[x] / (nv + 1.0)

    def _apply_noise(self) -> None:
        if not self._noise or self._raw_root_prior is not None:
            return
        t = self.tree
        sl = t.children(t.root)
        raw = t.prior[sl].copy()
        self._raw_root_prior = raw
        noise = self.rng.dirichlet(np.full(len(raw), self.cfg.dirichlet_alpha))
        f = self.cfg.dirichlet_fraction
        t.prior[sl] = (1 - f) * raw + f * noise
        t.refresh_u(sl)

    def _pad(self) -> None:
        """Extend the N and W mirrors over nodes an expansion has just added."""
        k = self.tree.size - len(self._vis)
        if k > 0:
            self._vis.extend([0.0] * k)
            self._vsum.extend([0.0] * k)

    def sync(self) -> None:
        """Write the running search's N and W (kept in lists while it runs) into the tree's
        arrays, so the tree can be read between steps: analysis reports while it searches.
        Between steps every leaf sent has been absorbed, so no virtual loss is counted."""
        t = self.tree
        n = len(self._vis)
        t.visits[:n] = self._vis
        t.value_sum[:n] = self._vsum

    def finish(self) -> SearchResult:
        t = self.tree
        n = len(self._vis)  # the mirrors back into the tree's arrays
        t.visits[:n] = self._vis
        t.value_sum[:n] = self._vsum
        a = self.game.num_actions
        visits = np.zeros(a)
        policy = np.zeros(a)
        root = t.root
        chosen: int | None = None
        if t.expanded(root):
            sl = t.children(root)
            if self._raw_root_prior is not None:  # noise belongs to this search only
                t.prior[sl] = self._raw_root_prior
                t.refresh_u(sl)
            acts = t.action[sl]
            visits[acts] = t.visits[sl]
            policy[acts] = visits[acts] / visits.sum() if visits.sum() > 0 else t.prior[sl]
            if self._gumbel:  # target softmax(logits + sigma(completed Q)); play the survivor
                h = self._halving or self._start_halving()
                cfg = self.cfg
                policy[acts] = gumbel.improved_policy(
                    t.prior[sl], t.q[sl], t.visits[sl], float(t.raw_value[root]),
                    cfg.gumbel_c_visit, cfg.gumbel_c_scale)
                chosen = int(acts[h.best(self._root_scores(h))])
        else:  # not even the root was affordable
            legal = t.states[root].legal_actions()
            policy[legal] = 1.0 / len(legal)
        n = t.visits[root]
        value = float(-t.value_sum[root] / n) if n > 0 else 0.0
        return SearchResult(
            visits=visits, policy=policy, value=value, simulations=self.simulations,
            flops=self.flops, exit_histogram=self.histogram.copy(),
            budget_flops=None if self.budget is None else self.budget.total,
            exits=np.asarray(self._exits, dtype=np.int64),
            fractions=np.asarray(self._fractions, dtype=np.float64), action=chosen)


# ---- the driver: many trees, one network call per step

_ALL_LEGAL: dict[tuple[int, int], np.ndarray] = {}  # read-only all-True masks, by shape


def _all_legal(n: int, num_actions: int) -> np.ndarray:
    mask = _ALL_LEGAL.get((n, num_actions))
    if mask is None:
        mask = _ALL_LEGAL[(n, num_actions)] = np.broadcast_to(np.True_, (n, num_actions))
    return mask


def _batch_inputs(leaves: list[Leaf], num_actions: int, want_planes: bool, want_legal: bool
                  ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
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


def run_searches(searches: Sequence[MCTS], states: Sequence[GameState], evaluator: Evaluator,
                 add_noise: bool | Sequence[bool] = False,
                 limits: Sequence[SearchLimit | None] | None = None,
                 stop: Callable[[], bool] | None = None) -> list[SearchResult]:
    """Search `states[i]` with `searches[i]`, all trees stepped together; one
    `evaluator.evaluate` call per step carries every tree's pending leaves.

    Evaluators that set `wants_states = True` (rollouts) also get the leaf states, those
    that set `wants_planes = False` get no observation planes, and those that set
    `wants_legal = False` (their policy does not depend on the legal moves, e.g. uniform)
    get an all-True mask: the tree renormalises priors over the legal moves at expansion
    either way, and then need not list a leaf's legal moves until it is passed through.

    `limits[i]` replaces search i's budget for this search (None: its config's). `stop` is
    asked after every step; when it answers True the searches end there (a deadline, or a
    GTP command arriving during analysis)."""
    if len(searches) != len(states):
        raise ValueError("one state per search")
    noise = [add_noise] * len(searches) if isinstance(add_noise, bool) else list(add_noise)
    limits = list(limits) if limits is not None else [None] * len(searches)
    for s, st, nz, lim in zip(searches, states, noise, limits):
        s.begin(st, nz, lim)
    want_states = evaluator.wants_states
    want_planes = evaluator.wants_planes
    want_legal = evaluator.wants_legal
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
        if stop is not None and active and stop():
            break
    return [s.finish() for s in searches]
