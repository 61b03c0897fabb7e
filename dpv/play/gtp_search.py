"""The GTP engine's hold on its network player's search (DPV-MCTS with the player's own exit
policy): moves under a game clock, and open-ended analysis.

Clock. A move's share of the clock (seconds) becomes a search limit through a measured
per-exit latency: `measure_latency` times short fixed-exit searches at every exit (seconds
per evaluation, tree work included). The fixed mode gets share / latency(its exit)
simulations; the budgeted modes (fixed_budget, dynamic, dynamic_static) get the FLOPs
budget B = share / max_k(latency_k / FLOPs_k), the rate of the slowest exit per FLOP, so any
mix of exits fits in the share. Whatever the latency turns out to be (a shared machine),
the search stops between steps at the share's deadline, or before it when the next step,
taking as long as the last one did, would end past it.

Analysis has no per-move budget, so it runs in rounds: each round is exactly the search
`genmove` would run without a clock (the player's mode, n_ref or simulations, tau0, alpha),
continued on the same tree, so within a round the dynamic threshold tau0 + alpha * r sees
r = spent / B against the player's nominal budget, from 0 to 1, and each new round starts
cheap again on a deeper tree. The first round ends with exactly the tree genmove would have
searched. Reports are taken between steps of the search (every `interval`), the analysis
stops between steps when the next command arrives, and the tree stops growing at
MAX_TREE_NODES (the reports go on).
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dpv.evaluator import BatchedEvaluator
from dpv.exits import FixedExit
from dpv.games.base import GameState
from dpv.mcts import MCTS, SearchLimit, SearchResult, run_searches, select_action, temperature_for_move
from dpv.play.gtp_analysis import AnalysisRequest, candidates, exit_share, info_line
from dpv.players.base import MoveInfo
from dpv.players.net_player import NetPlayer, principal_variation

MAX_TREE_NODES = 2_000_000  # ~200 MB of tree arrays: an analysis left running stops growing here
LATENCY_SIMULATIONS = 32  # per exit and repeat: enough steps to time, short enough to wait for
LATENCY_REPEATS = 3

Write = Callable[[str], None]
Stop = Callable[[], bool]


@dataclass(frozen=True)
class Latency:
    """Measured seconds per evaluation at each exit (fixed-exit search, tree work included)."""

    seconds: np.ndarray  # (K,)
    flops: np.ndarray  # (K,) FLOPs of a fixed-exit evaluation at each exit

    @property
    def seconds_per_flop(self) -> float:
        """The slowest exit's rate: a budget of share / this fits any mix of exits."""
        return float(np.max(self.seconds / self.flops))

    def describe(self) -> str:
        return ", ".join(f"exit {k}: {1000 * s:.2f} ms" for k, s in enumerate(self.seconds))


def measure_latency(player: NetPlayer, state: GameState) -> Latency:
    """Time `LATENCY_SIMULATIONS`-simulation fixed-exit searches of `state` at every exit
    (median of LATENCY_REPEATS, after one warm-up), on scratch trees."""
    net_ev = player.evaluator
    seconds = []
    for k in range(net_ev.num_exits):
        ev = BatchedEvaluator(net_ev.net, FixedExit(k), net_ev.device)
        cfg = dataclasses.replace(player.cfg, exit_mode="fixed", exit=k, n_ref=0,
                                  simulations=LATENCY_SIMULATIONS)
        times = []
        for rep in range(LATENCY_REPEATS + 1):
            m = MCTS(player.game, cfg, ev, np.random.default_rng(rep))
            t0 = time.perf_counter()
            r = m.search(state)
            if rep:  # the first search warms the network up
                times.append((time.perf_counter() - t0) / max(r.simulations, 1))
        seconds.append(statistics.median(times))
    return Latency(np.asarray(seconds), np.asarray(net_ev.fixed_flops, dtype=np.float64))


class PlayerSearch:
    """Timed moves and analysis on a NetPlayer's own tree (so analysis carries into genmove)."""

    def __init__(self, player: NetPlayer, rng: np.random.Generator):
        self.player = player
        self.rng = rng
        self.latency: Latency | None = None

    @property
    def mcts(self) -> MCTS:
        return self.player.mcts

    def black_ownership(self, state: GameState) -> np.ndarray | None:
        """(H, W) ownership, +1 Black, from the network's ownership head; None without one."""
        aux = self.player.position_aux([state])
        return None if aux is None else aux[0].black_ownership

    # ---------------------------------------------------------------- clock
    def calibrate(self, state: GameState) -> Latency:
        if self.latency is None:
            self.latency = measure_latency(self.player, state)
        return self.latency

    def limit_for(self, seconds: float) -> SearchLimit:
        """The search limit a share of `seconds` pays for (see the module doc)."""
        lat = self.latency
        if lat is None:
            raise RuntimeError("calibrate() before limit_for()")
        cfg = self.player.cfg
        if cfg.exit_mode == "fixed":
            k = cfg.exit % len(lat.seconds)
            return SearchLimit(simulations=max(1, int(seconds / lat.seconds[k])))
        cheapest = float(self.player.evaluator.min_cost())
        return SearchLimit(budget_flops=max(cheapest, seconds / lat.seconds_per_flop))

    def move(self, state: GameState, seconds: float | None = None,
             request: AnalysisRequest | None = None, write: Write | None = None) -> tuple[int, MoveInfo]:
        """The player's move in `state`: its own budget, or what `seconds` pays for with a
        deadline at `seconds`; with a request, reports on the way (lz-genmove_analyze)."""
        t0 = time.perf_counter()
        limit, deadline = None, None
        if seconds is not None:
            self.calibrate(state)
            limit = self.limit_for(seconds)
            deadline = time.monotonic() + seconds
        reporter = _Reporter(self, state, request, write) if request and write else None
        last = [time.monotonic()]

        def stop() -> bool:
            """Between steps: stop at the deadline, or before it when the next step, as long
            as the last one, would end past it (a loaded machine makes steps slow)."""
            if reporter is not None:
                reporter.maybe_report()
            if deadline is None:
                return False
            now = time.monotonic()
            step, last[0] = now - last[0], now
            return now + step >= deadline

        if reporter is not None:
            reporter.running = True
        result = self._search(state, limit, stop)
        if reporter is not None:
            reporter.finished(result)
            reporter.report()
        cfg = self.player.cfg
        action = select_action(result, temperature_for_move(cfg, len(state.history())), self.rng)
        info = MoveInfo(seconds=time.perf_counter() - t0, flops=result.flops,
                        simulations=result.simulations,
                        exit_histogram=[int(c) for c in result.exit_histogram],
                        budget_flops=result.budget_flops, root_value=result.value,
                        visits=result.visits,
                        principal_variation=principal_variation(self.mcts.tree, action))
        self.player.last_move = info
        return action, info

    def _search(self, state: GameState, limit: SearchLimit | None, stop: Stop) -> SearchResult:
        return run_searches([self.mcts], [state], self.player.evaluator,
                            add_noise=self.player.add_noise, limits=[limit], stop=stop)[0]

    # ---------------------------------------------------------------- analysis
    def analyse(self, state: GameState, request: AnalysisRequest, write: Write, stop: Stop) -> None:
        """Search `state` round after round, reporting every `request.interval` seconds,
        until `stop()` (the next command has arrived)."""
        reporter = _Reporter(self, state, request, write)
        if state.is_terminal():  # nothing to search: wait for the next command
            while not stop():
                time.sleep(0.01)
            return
        halted = False

        def step_done() -> bool:
            nonlocal halted
            reporter.maybe_report()
            halted = stop()
            return halted

        while not halted:
            if self.mcts.tree.size >= MAX_TREE_NODES:
                while not stop():  # full: keep reporting what is known
                    reporter.maybe_report()
                    time.sleep(0.01)
                break
            reporter.running = True
            result = run_searches([self.mcts], [state], self.player.evaluator, add_noise=False,
                                  stop=step_done)[0]
            reporter.finished(result)
            halted = halted or stop()
        if request.interval == 0:
            reporter.report()


class _Reporter:
    """Writes info lines every `request.interval` seconds (between search steps)."""

    def __init__(self, search: PlayerSearch, state: GameState, request: AnalysisRequest | None,
                 write: Write | None):
        self.search = search
        self.size = int(search.player.game.observation_shape[-1])
        self.request = request
        self.write = write
        self.base = np.zeros(search.player.evaluator.num_exits, dtype=np.int64)  # finished rounds
        self.running = False  # inside a search: its N and W are in MCTS's lists, and its exits
        self.state = state
        # kata: score leads of candidates (child positions never change: read once each) and
        # the root's ownership, from the network's aux heads; None when it has none
        self.kata = request is not None and request.dialect == "kata"
        self.scores: dict[int, float] | None = {} if self.kata else None
        self.ownership: np.ndarray | None = None
        self.next_at = time.monotonic() + (request.interval if request else 0.0)

    def maybe_report(self) -> None:
        if self.request is None or self.request.interval <= 0:
            return
        now = time.monotonic()
        if now >= self.next_at:
            self.report()
            self.next_at = now + self.request.interval

    def finished(self, result: SearchResult) -> None:
        self.base += result.exit_histogram
        self.running = False

    def report(self) -> None:
        if self.request is None or self.write is None:
            return
        m = self.search.mcts
        running = np.zeros_like(self.base)
        if self.running:  # between steps of a search: bring the tree's arrays up to date
            m.sync()
            running = m.histogram
        found = candidates(m, self.request.max_moves)
        if self.scores is not None and found:
            found = self._with_scores(found)
        line = info_line(found, exit_share(self.base + running), self.size, self.request.dialect,
                         self.ownership)
        if line:
            self.write(line + "\n")

    def _with_scores(self, found: list) -> list:
        player = self.search.player
        scores = self.scores
        if scores is None:  # callers ask only while the net has a score head
            return found
        missing = [c.action for c in found if c.action not in scores]
        if missing:
            aux = player.position_aux([self.state.child(a) for a in missing])
            if aux is None:  # no score head: kata lines without scores from now on
                self.scores = None
                return found
            assert self.request is not None  # kata lines only
            # the child's mover is the opponent: the side to move leads by minus its score
            scores.update({a: -p.score for a, p in zip(missing, aux)})
            if self.request.ownership and self.ownership is None:
                root_aux = player.position_aux([self.state])
                assert root_aux is not None  # the net has the heads (checked just above)
                root = root_aux[0]
                self.ownership = root.ownership  # the mover's view, rank 1 first
        return [dataclasses.replace(c, score_lead=scores[c.action]) for c in found]
