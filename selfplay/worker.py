"""The self-play loop: many concurrent games, one batched network call per search step.

A plain class (the Ray actor in actors.py only moves data in and out). Each call to `play`
advances every game by a few moves; a game that ends becomes a `SelfPlayGame` for the
replay buffer and its slot starts a new game, so the batch stays full. Self-play always
searches with one exit (the deepest by default; multi_step changes it over the run).
With playout caps (selfplay.full_search_share < 1) most moves get a fast search and are
recorded as value targets only (policy weight 0). With selfplay.resign on, a player whose
root value stays low resigns, except in a share of games played out to check the rule
(selfplay.resign); targets at the end of a game come from selfplay.targets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from dpv.config import MCTSConfig
from dpv.evaluator import BatchedEvaluator, Evaluator, TimedEvaluator
from dpv.exits import FixedExit
from dpv.games.base import GameState
from dpv.games.spiel import make_game
from dpv.inference import EvaluationService, ServerEvaluator
from dpv.mcts import MCTS, run_searches, select_action, temperature_for_move
from dpv.mcts.search import SearchLimit
from dpv.nets import build_policy_value_net
from selfplay.config import RunConfig
from selfplay.replay import SelfPlayGame
from selfplay.resign import PlayedOut, ResignTracker
from selfplay.targets import GameTargets, finished_game_targets, resigned_game_targets
from selfplay.sysinfo import anon_rss_mb, rss_mb


class NoEarlyPass(GameState):
    """A state whose pass move is hidden before move `until` (unless it is the only move).

    An untrained Go net that passes early ends games before anything is learned, and a net
    trained on such games learns to pass (the colour plane alone predicts komi wins), so
    self-play can keep the first moves pass-free. Search clones it like any state."""

    __slots__ = ("_s", "until", "pass_action")

    def __init__(self, state: GameState, until: int, pass_action: int):
        self._s = state
        self.until = until
        self.pass_action = pass_action

    @property
    def inner(self) -> GameState:
        """The wrapped state, all moves visible (what the game scores)."""
        return self._s

    def _hide(self, n_legal: int) -> bool:
        return self._s.move_number() < self.until and n_legal > 1

    def legal_actions(self) -> list[int]:
        acts = self._s.legal_actions()
        return [a for a in acts if a != self.pass_action] if self._hide(len(acts)) else acts

    def legal_mask(self) -> np.ndarray:
        mask = self._s.legal_mask()
        if self._hide(int(mask.sum())):
            mask[self.pass_action] = False
        return mask

    def is_legal(self, action: int) -> bool:
        return not self._s.is_terminal() and action in self.legal_actions()

    def clone(self) -> NoEarlyPass:
        return NoEarlyPass(self._s.clone(), self.until, self.pass_action)

    def child(self, action: int) -> NoEarlyPass:
        return NoEarlyPass(self._s.child(action), self.until, self.pass_action)

    # the rest is the wrapped state's
    def current_player(self) -> int:
        return self._s.current_player()

    def apply(self, action: int) -> None:
        self._s.apply(action)

    def is_terminal(self) -> bool:
        return self._s.is_terminal()

    def returns(self) -> Sequence[float]:
        return self._s.returns()

    def terminal_value(self) -> float:
        return self._s.terminal_value()

    def observation(self) -> np.ndarray:
        return self._s.observation()

    def history(self) -> list[int]:
        return self._s.history()

    def move_number(self) -> int:
        return self._s.move_number()


@dataclass
class SelfPlayReport:
    """What one `play` call produced and where its time went."""

    games: list[SelfPlayGame] = field(default_factory=list)
    moves: int = 0  # moves played, over all slots
    evaluations: int = 0  # network rows evaluated
    network_calls: int = 0
    seconds: float = 0.0  # wall time of the call inside the worker
    network_seconds: float = 0.0  # of which inside the evaluator (forward + softmax)
    exit_histogram: list[int] = field(default_factory=list)
    version: int = -1  # weights version the moves were searched with
    exit: int = -1
    full_searches: int = 0  # moves searched in full (policy targets); the rest were fast
    resigned: int = 0  # games that ended by resignation
    played_out: int = 0  # games with resignation off (the check share) that ended
    would_resign: int = 0  # of those, games the rule would have ended at the threshold
    false_positives: int = 0  # of those, games the would-be resigner did not lose
    resign_threshold: float | None = None  # the worker's threshold after the call (None: off)
    rss_mb: float = 0.0  # the actor's resident memory after the call
    anon_mb: float = 0.0  # of which private (not object-store pages)


class _Slot:
    __slots__ = ("state", "search", "planes", "policies", "players", "policy_weights",
                 "simulations", "flops", "root_values", "resign_off")

    def __init__(self, state: GameState, search: MCTS, resign_off: bool = False):
        self.state = state
        self.search = search
        self.planes: list[np.ndarray] = []
        self.policies: list[np.ndarray] = []
        self.players: list[int] = []
        self.policy_weights: list[float] = []  # 1: full search (policy target), 0: fast
        self.simulations = 0
        self.flops = 0.0
        self.root_values: list[float] = []  # per move, the mover's root value
        self.resign_off = resign_off  # resignation off in this game: played out to check it

    def own_values(self, player: int) -> list[float]:
        return [v for v, p in zip(self.root_values, self.players) if p == player]


class SelfPlayWorker:
    def __init__(self, cfg: RunConfig, seed: int = 0, device: str = "cpu",
                 service: EvaluationService | None = None):
        # service: an inference server that owns the network (selfplay.inference: server);
        # this worker's net then only gives shapes and FLOPs, and its weights stay unloaded
        self.service = service
        self.cfg = cfg
        self.device = device
        self.game = make_game(cfg.game)
        self.net = build_policy_value_net(cfg.net, self.game).to(device).eval()
        self.rng = np.random.default_rng(seed)
        self.version = -1
        self.exit = cfg.selfplay.exit % self.net.num_exits
        self.evaluator, self.mcts_cfg = self._build_evaluator()
        self.resign = ResignTracker(cfg.selfplay.resign)
        self.slots = [self._new_slot() for _ in range(cfg.selfplay.concurrent_games)]
        self._fast = SearchLimit(simulations=cfg.selfplay.fast_simulations or None)

    def _full_searches(self) -> list[bool]:
        """Playout-cap randomisation (KataGo): which slots search this move in full (with
        root noise, a policy target); the others run the fast search (value target only)."""
        share = self.cfg.selfplay.full_search_share
        if share >= 1.0:
            return [True] * len(self.slots)
        return (self.rng.random(len(self.slots)) < share).tolist()

    def _build_evaluator(self) -> tuple[TimedEvaluator, MCTSConfig]:
        """The evaluator and search config of the current self-play exit."""
        policy = FixedExit(self.exit)
        inner: Evaluator
        if self.service is not None:
            inner = ServerEvaluator(self.service, policy, self.net.flops())
        else:
            inner = BatchedEvaluator(self.net, policy, self.device)
        ev = TimedEvaluator(inner)
        return ev, replace(self.cfg.mcts, exit_mode="fixed", exit=self.exit)

    def _new_slot(self) -> _Slot:
        state: GameState = self.game.new_state()
        until = self.cfg.selfplay.pass_after
        pass_action = self.game.pass_action
        if until and pass_action is not None:
            state = NoEarlyPass(state, until, pass_action)
        rc = self.cfg.selfplay.resign
        resign_off = rc.enabled and bool(self.rng.random() < rc.playout_share)
        return _Slot(state, self._new_search(), resign_off)

    def _new_search(self) -> MCTS:
        return MCTS(self.game, self.mcts_cfg, self.evaluator, rng=self.rng)

    def set_weights(self, state_dict, version: int) -> None:
        """Load new weights; trees built with the old network are dropped (their priors
        and values came from it), the games themselves go on."""
        if version == self.version:
            return
        if state_dict is not None:  # None: the inference server holds the weights
            self.net.load_state_dict(state_dict)
            self.net.eval()
        self.version = version
        self.drop_searches()

    def drop_searches(self) -> None:
        """Drop every tree (new weights, or a search step that failed with its leaves still
        pending); the games themselves go on."""
        for s in self.slots:
            s.search.reset()

    def set_exit(self, k: int) -> None:
        k %= self.net.num_exits
        if k == self.exit:
            return
        self.exit = k
        self.evaluator, self.mcts_cfg = self._build_evaluator()
        for s in self.slots:
            s.search = self._new_search()

    @torch.inference_mode()
    def play(self, moves: int) -> SelfPlayReport:
        """Advance every concurrent game by `moves` moves; return the games that ended."""
        t0 = time.perf_counter()
        ev = self.evaluator
        rows0, calls0, secs0 = ev.rows, ev.calls, ev.seconds
        hist = np.zeros(self.net.num_exits, dtype=np.int64)
        report = SelfPlayReport(version=self.version, exit=self.exit)
        for _ in range(moves):
            full = self._full_searches()
            results = run_searches([s.search for s in self.slots], [s.state for s in self.slots],
                                   ev, add_noise=full,
                                   limits=[None if f else self._fast for f in full])
            report.full_searches += sum(full)
            for i, (slot, res) in enumerate(zip(self.slots, results)):
                hist[: len(res.exit_histogram)] += res.exit_histogram
                slot.planes.append(slot.state.observation().astype(np.uint8))
                slot.policies.append(res.policy.astype(np.float32))
                slot.players.append(slot.state.current_player())
                slot.policy_weights.append(1.0 if full[i] else 0.0)
                slot.simulations += res.simulations
                slot.flops += res.flops
                slot.root_values.append(float(res.value))
                mover = slot.players[-1]
                if not slot.resign_off and self.resign.should_resign(slot.own_values(mover)):
                    report.games.append(self._record(slot, resigned_game_targets(mover, slot.players)))
                    report.resigned += 1
                    self.slots[i] = self._new_slot()
                    continue
                temp = temperature_for_move(self.mcts_cfg, slot.state.move_number())
                action = select_action(res, temp, self.rng)
                slot.state.apply(action)
                slot.search.advance(action)
                report.moves += 1
                if slot.state.is_terminal():
                    report.games.append(self._finish(slot, report))
                    self.slots[i] = self._new_slot()
        report.evaluations = ev.rows - rows0
        report.network_calls = ev.calls - calls0
        report.network_seconds = ev.seconds - secs0
        report.seconds = time.perf_counter() - t0
        report.exit_histogram = hist.tolist()
        report.resign_threshold = self.resign.threshold if self.resign.cfg.enabled else None
        report.rss_mb = rss_mb()
        report.anon_mb = anon_rss_mb()
        return report

    def _finish(self, slot: _Slot, report: SelfPlayReport) -> SelfPlayGame:
        """A game played to its end; a played-out check game also tells the resign tracker."""
        state = slot.state.inner if isinstance(slot.state, NoEarlyPass) else slot.state
        # the one outcome the arena and GTP report too
        targets = finished_game_targets(self.game, state, slot.players)
        if slot.resign_off:
            would, wrong = self.resign.record(PlayedOut(np.array(slot.root_values),
                                                        np.array(slot.players), targets.winner))
            report.played_out += 1
            report.would_resign += would
            report.false_positives += wrong
        return self._record(slot, targets)

    def _record(self, slot: _Slot, targets: GameTargets) -> SelfPlayGame:
        return SelfPlayGame(np.stack(slot.planes), np.stack(slot.policies), targets.values,
                            exit_used=self.exit, simulations=slot.simulations, flops=slot.flops,
                            policy_weights=np.array(slot.policy_weights, dtype=np.float32),
                            ownership=targets.ownership, score=targets.score)
