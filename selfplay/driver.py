"""The training run: the driver process owns the learner (on CUDA when present), the replay
buffer and the counters, and steers Ray actors for self-play and evaluation.

Loop: collect finished self-play calls into the buffer, keep every actor's queue filled up
to its bound, train as far as the schedule allows (in short slices, so actors are never left
waiting long), start gating and anchor matches when due, checkpoint on a timer. Everything a
resume needs is in the run directory; actors hold only games in progress.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import numpy as np
import ray
import torch

from dpv.errors import CheckpointError, ConfigError
from dpv.games import make_game
from dpv.nets import build_policy_value_net
from selfplay.actors import EvalActor, SelfPlayActor
from selfplay.anchors import anchor_name, missing_binary
from selfplay.cluster import HeadLost, HeadWatch, actor_cpus, head_reachable
from selfplay.config import RunConfig
from selfplay.gating import promote
from selfplay.inference import ServerLost, ServerPool
from selfplay.learner import Learner, mean_metrics
from selfplay.monitor import Monitor
from selfplay.replay import ReplayBuffer
from selfplay.rundir import Resumed, RunDir, RunState
from selfplay.schedule import Counters, Limits, allowed_steps, selfplay_exit

TRAIN_SLICE_S = 1.0  # longest stretch of training between two looks at the actors
# An actor that died, or the node under it: its results are gone with it (games in progress
# only; everything durable is in the run directory), and the actor is replaced.
ACTOR_LOST = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError)


@dataclass(frozen=True)
class MatchScore:
    """Wins, losses and draws of one side, summed over the parts of a match that several
    evaluation actors played (each part is a match result with .wins .losses .draws)."""

    wins: int = 0
    losses: int = 0
    draws: int = 0

    @classmethod
    def total(cls, parts) -> "MatchScore":
        return cls(sum(p.wins for p in parts), sum(p.losses for p in parts), sum(p.draws for p in parts))

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def score(self) -> float:
        """Wins + half the draws, over games; 0.5 with no games (as the match engine)."""
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.5

    @property
    def wld(self) -> str:
        return f"{self.wins}-{self.losses}-{self.draws}"


@dataclass
class PendingGate:
    """A gating match in flight; the candidate's weights wait here until it is scored."""

    refs: list  # one Ray call per evaluation actor, each a part of the match
    candidate: dict
    version: int
    step: int  # learner step the candidate was taken at


@dataclass(frozen=True)
class AnchorCall:
    ref: object  # Ray ObjectRef of the match result
    spec: str  # the anchor's player spec


@dataclass
class PendingAnchors:
    """One round of anchor matches in flight, all for the same best network."""

    calls: list[AnchorCall]
    step: int
    best_version: int


class TrainingRun:
    def __init__(self, cfg: RunConfig, run_dir: RunDir, limits: Limits, progress: bool = True,
                 echo=print):
        self.cfg = cfg
        self.rd = run_dir
        self.limits = limits
        self.echo = echo
        self.game = make_game(cfg.game)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.learner = Learner(cfg, self.game)
        self.buffer = ReplayBuffer(cfg.replay.capacity, self.game.observation_shape,
                                   self.game.num_actions, self.game, cfg.replay.symmetries)
        self.counters = Counters()
        self.best_weights = self.learner.weights_cpu()
        self.rng = np.random.default_rng(cfg.train.seed)
        self.progress = progress
        self.stop_reason: str | None = None
        self._metrics: list = []  # learner step metrics not yet logged
        self._best_ref = None  # the best weights in the object store (set when Ray is up)
        self._gate: PendingGate | None = None
        # gating.opponent "previous": the last candidate gated, whether promoted or not (not
        # saved: a resumed run's first gate is against the best)
        self._previous: dict | None = None
        self._anchor_round: PendingAnchors | None = None
        self._skipped: set[str] = set()  # anchors whose binary is missing (logged once)
        self._saved: tuple[int, int] | None = None  # (games, steps) of the newest checkpoint
        if cfg.train.variant == "multi_step" and limits.progress(self.counters) is None:
            raise ConfigError("train.variant multi_step switches the self-play exit over the run: "
                              "give it a length with --max-games, --max-steps or --hours")

    # ------------------------------------------------------------ state on disk
    def restore(self) -> Resumed | None:
        """Continue from the newest intact checkpoint in the run dir (None when there is
        none); damaged newer ones are moved aside, and best.pt is made to match."""
        got = self.rd.resume(self.buffer.load)
        if got is None:
            return None
        st = got.state
        try:
            self.learner.load_state_dict(st.learner)
            best_net = self._net_with(st.best_model)
        except (RuntimeError, KeyError, ValueError) as e:  # e.g. --force-config changed the net
            raise CheckpointError(f"checkpoint {got.path} does not fit this config's network "
                                  f"({str(e).splitlines()[0][:120]}); use another --run-dir") from None
        self.best_weights = st.best_model
        self.counters = st.counters
        self._saved = (st.counters.games, st.counters.steps)
        if st.rng is not None:
            self.rng.bit_generator.state = st.rng
        if got.set_aside or not self.rd.best_is_from(self.counters):
            self.rd.write_best(best_net, self.cfg.game, self._best_extra())
        return got

    def save(self) -> None:
        """Checkpoint, unless the newest checkpoint already holds these games and steps
        (a checkpoint equal to the last one is noise: a slow first game, a save on exit)."""
        if self._saved == (self.counters.games, self.counters.steps):
            return
        state = RunState(self.counters, self.learner.state_dict(), self.best_weights,
                         self.rng.bit_generator.state, self.cfg.to_dict())
        self.rd.save(state, self.buffer, self._net_with(self.best_weights), self.cfg.game,
                     self._best_extra())
        self._saved = (self.counters.games, self.counters.steps)

    def _best_extra(self) -> dict:
        """What best.pt records beside the weights (best_is_from reads it back)."""
        c = self.counters
        return {"version": c.best_version, "step": c.best_step, "games": c.games}

    def _net_with(self, weights):
        net = build_policy_value_net(self.cfg.net, self.game)
        net.load_state_dict(weights)
        return net

    # ------------------------------------------------------------ the loop
    def current_exit(self) -> int:
        return selfplay_exit(self.cfg.train.variant, self.cfg.selfplay.exit,
                             self.learner.net.num_exits, self.limits.progress(self.counters))

    def run(self, cpu_fit: float = 1.0) -> str:
        """Train until a limit, Ctrl-C or SIGTERM; `cpu_fit` < 1 scales the CPUs each actor
        reserves on a cluster smaller than the config (selfplay.cluster)."""
        c = self.counters
        c.sessions += 1
        self.rd.log(f"session {c.sessions} starts: games {c.games} steps {c.steps} "
                    f"buffer {len(self.buffer)} best v{c.best_version} device {self.learner.device}")
        monitor = Monitor(self.rd.tb_dir, c.steps, self.learner.net.num_exits, self.progress)
        interrupted = []
        watch = HeadWatch(ray.get_runtime_context().gcs_address)

        def on_signal(signum, frame):
            if watch.lost:  # the watch's SIGINT: out of whatever Ray call the loop waits in
                raise HeadLost(watch.lost)
            if interrupted:  # a second Ctrl-C: stop at once (the last checkpoint stands)
                raise KeyboardInterrupt
            interrupted.append(signum)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        pool = _ActorPool(self.cfg, c.sessions, cpu_fit)
        lost: HeadLost | None = None
        try:
            watch.start()
            pool.start()
            self._loop(pool, monitor, interrupted)
        except HeadLost as e:
            lost = e  # the learner, buffer and counters live here: save them, then stop
            self.stop_reason = str(e)
        finally:
            watch.stop()
            for s, h in old.items():
                signal.signal(s, h)
            if lost is None:
                pool.stop()  # (actors of a lost head died with it)
        self.save()
        self.rd.log(f"session {c.sessions} ends: {self.stop_reason}")
        if lost is not None:
            monitor.close()
            raise HeadLost(f"{lost}; checkpoint written (games {c.games}, steps {c.steps}): re-run "
                           f"the same command to resume once the cluster is back")
        monitor.status(c, len(self.buffer), c.best_version, self.current_exit())
        monitor.close()
        return self.stop_reason or "stopped"

    def _loop(self, pool: "_ActorPool", monitor: Monitor, interrupted: list) -> None:
        c, t = self.counters, self.cfg.train
        self._best_ref = ray.put(self.best_weights)
        self._gate, self._anchor_round = None, None  # matches of an earlier session are gone
        last_tick = last_save = time.monotonic()
        while True:
            now = time.monotonic()
            c.seconds += now - last_tick
            last_tick = now
            if interrupted:
                self.stop_reason = "interrupted (Ctrl-C): checkpoint written"
                return
            self.stop_reason = self.limits.reached(c)
            if self.stop_reason:
                return
            exit_index = self.current_exit()
            pool.fill(self._best_ref, c.best_version, exit_index)
            for report in pool.collect(0.0 if self._may_train() else 0.2, self._note):
                for g in report.games:
                    self.buffer.add_game(g)
                    c.games += 1
                    c.positions += len(g)
                monitor.selfplay(c.steps, c.games, report, len(self.buffer))
            self._train_slice(monitor, interrupted)
            self._gating(pool, monitor)
            self._anchors(pool, monitor)
            if time.monotonic() - last_save >= t.checkpoint_seconds:
                self.save()
                monitor.flush()
                last_save = time.monotonic()
            monitor.status(c, len(self.buffer), c.best_version, exit_index)

    def _may_train(self) -> bool:
        c, cap = self.counters, self.limits.max_steps
        return c.steps < self._allowed() and (cap is None or c.steps < cap)

    def _train_slice(self, monitor: Monitor, interrupted: list) -> None:
        """Train as far as the schedule allows, for at most TRAIN_SLICE_S."""
        c, t = self.counters, self.cfg.train
        t0 = time.monotonic()
        while self._may_train() and not interrupted and time.monotonic() - t0 < TRAIN_SLICE_S:
            self._metrics.append(self.learner.step(self.buffer.sample(t.batch_size, self.rng)))
            c.steps = self.learner.steps
            if c.steps % t.log_every_steps == 0:
                monitor.train(c.steps, mean_metrics(self._metrics))
                self._metrics = []

    def _gating(self, pool: "_ActorPool", monitor: Monitor) -> None:
        """Start an evaluation match when due; promote the candidate when it wins it.
        With gating off, the learner's weights simply become the self-play network."""
        c, g = self.counters, self.cfg.gating
        since = c.steps - max(c.last_gate_step, self._gate.step if self._gate else 0)
        if c.steps > 0 and since >= g.every_steps:
            if not g.enabled:
                c.model_version += 1
                self._set_best(self.learner.weights_cpu(), c.model_version, c.steps)
                c.last_gate_step = c.steps
            elif self._gate is None:
                cand = self.learner.weights_cpu()
                c.model_version += 1
                against = self._best_ref
                if g.opponent == "previous" and self._previous is not None:
                    against = ray.put(self._previous)
                refs = pool.gate(ray.put(cand), against, c.model_version)
                self._gate = PendingGate(refs, cand, c.model_version, c.steps)
        gate = self._gate
        if gate is None or not pool.ready(gate.refs):
            return
        self._gate = None
        parts = pool.results(gate.refs, self._note)
        if parts is None:
            return  # an actor died: the match comes due again
        result = MatchScore.total(parts)
        promoted = promote(result, g.threshold)
        if g.opponent == "previous":
            self._previous = gate.candidate
        c.gating_matches += 1
        c.last_gate_step = gate.step
        if promoted:
            c.gating_promotions += 1
            self._set_best(gate.candidate, gate.version, gate.step)
        monitor.gating(c.steps, result, promoted, c.gating_promotions)
        self._note(f"gating at step {gate.step}: candidate v{gate.version} scored {result.score:.1%} "
                   f"({result.wld}) against the {g.opponent} -> "
                   f"{'new best' if promoted else 'best stays v' + str(c.best_version)}")

    def _set_best(self, weights, version: int, step: int) -> None:
        c = self.counters
        self.best_weights, c.best_version, c.best_step = weights, version, step
        self._best_ref = ray.put(weights)

    def _anchors(self, pool: "_ActorPool", monitor: Monitor) -> None:
        """Every anchors.every_steps, the best network plays each installed anchor."""
        c, every = self.counters, self.cfg.anchors.every_steps
        if every and self._anchor_round is None and c.steps > 0 and c.steps - c.last_anchor_step >= every:
            specs = []
            for spec in self.cfg.anchors.players:
                exe = missing_binary(spec)
                if exe is None:
                    specs.append(spec)
                elif spec not in self._skipped:
                    self._skipped.add(spec)
                    self._note(f"anchor {spec} skipped: {exe} is not installed")
            if specs:
                calls = [AnchorCall(ref, spec) for ref, spec in pool.anchors(self._best_ref, specs, c.steps)]
                self._anchor_round = PendingAnchors(calls, c.steps, c.best_version)
            else:
                c.last_anchor_step = c.steps
        rnd = self._anchor_round
        if rnd is None or not pool.ready([a.ref for a in rnd.calls]):
            return
        self._anchor_round = None
        results = pool.results([a.ref for a in rnd.calls], self._note)
        if results is None:
            return
        c.last_anchor_step = rnd.step
        for res, call in zip(results, rnd.calls):
            score = MatchScore.total([res])
            monitor.anchor(rnd.step, anchor_name(call.spec), score)
            self._note(f"anchor at step {rnd.step}: best v{rnd.best_version} vs {call.spec}: "
                       f"{score.score:.1%} ({score.wld})")

    def _allowed(self) -> int:
        t = self.cfg.train
        return allowed_steps(self.counters.games, t.start_games, t.steps_per_block, t.games_per_block)

    def _note(self, line: str) -> None:
        self.rd.log(line)
        self.echo(line)


class _ActorPool:
    """Self-play and evaluation actors, with a bounded number of calls queued to each."""

    def __init__(self, cfg: RunConfig, session: int, cpu_fit: float = 1.0):
        self.cfg = cfg
        self.session = session
        self.cpu_fit = cpu_fit
        self.cfg_dict = cfg.to_dict()
        self.selfplay: list = []
        self.evals: list = []
        self.inflight: dict = {}  # ref -> actor index
        self.pending: list[int] = []  # calls queued per self-play actor
        self.sent_version: list[int] = []  # weights version each self-play actor holds
        self._next_eval = 0
        self._gpu = 0.0  # GPU share of each self-play actor (set by start, once Ray is up)
        self._seed0 = cfg.train.seed * 1_000_003 + session * 1009  # a resumed run plays new games
        self._spawned = 0  # replacement actors started (each gets a fresh seed)
        self._gcs = ""  # the head's GCS address, to tell a lost actor from a lost head
        self._node_refs: list = []  # per self-play actor: its node id (a Ray ref, read once)
        self._heard: list[bool] = []  # per self-play actor: games received from it yet
        # selfplay.inference: server: the servers own the network, the actors none
        self.servers = ServerPool(cfg) if cfg.selfplay.inference == "server" else None

    def _gpu_share(self) -> float:
        if self.cfg.selfplay.device != "auto" or self.servers is not None:
            return 0.0
        gpus = ray.cluster_resources().get("GPU", 0.0)
        n = self.cfg.selfplay.actors
        return min(1.0, gpus / n) if gpus else 0.0

    def _new_selfplay(self, seed: int):
        sp = self.cfg.selfplay
        # SPREAD: over the cluster's nodes, and onto the live ones when a node is lost
        # (+1 pending call: the node query below)
        return SelfPlayActor.options(num_cpus=actor_cpus(sp.threads_per_actor, self.cpu_fit),
                                     num_gpus=self._gpu, max_pending_calls=sp.max_pending_calls + 1,
                                     scheduling_strategy="SPREAD").remote(
            self.cfg_dict, seed, sp.threads_per_actor, "cuda" if self._gpu else "cpu",
            self.servers.handle_for(0) if self.servers else None)

    def _new_eval(self):
        return EvalActor.options(num_cpus=actor_cpus(1, self.cpu_fit),
                                 scheduling_strategy="SPREAD").remote(self.cfg_dict, 1)

    def start(self) -> None:
        sp = self.cfg.selfplay
        self._gpu = self._gpu_share()
        self._gcs = ray.get_runtime_context().gcs_address
        if self.servers:
            self.servers.start()
        self.selfplay = [self._new_selfplay(self._seed0 + i) for i in range(sp.actors)]
        self._node_refs = [a.node.remote() for a in self.selfplay]
        self._heard = [False] * sp.actors
        self.evals = [self._new_eval() for _ in range(self.cfg.ray.eval_actors)]
        self.pending = [0] * sp.actors
        self.sent_version = [-1] * sp.actors

    def fill(self, weights_ref, version: int, exit_index: int) -> None:
        sp = self.cfg.selfplay
        if self.servers:  # weights go to the servers, never to the actors
            self.servers.sync(weights_ref, version)
        for i, actor in enumerate(self.selfplay):
            while self.pending[i] < sp.max_pending_calls:
                w = weights_ref if self.sent_version[i] != version and not self.servers else None
                server = self.servers.handle_for(i) if self.servers else None
                try:
                    ref = actor.play.remote(w, version, exit_index, sp.moves_per_call, server)
                except ray.exceptions.PendingCallsLimitExceeded:
                    break  # Ray frees a slot a moment after the result is ready: next round
                self.sent_version[i] = version
                self.inflight[ref] = i
                self.pending[i] += 1

    def collect(self, timeout: float, note=print):
        if not self.inflight:
            return []
        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        out = []
        for ref in ready:
            i = self.inflight.pop(ref, None)
            if i is None:  # a call of an actor already replaced
                continue
            self.pending[i] -= 1
            try:
                out.append(ray.get(ref))
            except ServerLost:  # the actor lives on; its server is replaced, its games go on
                self._check_head()
                if self.servers:
                    self.servers.replace_dead(note)
                continue
            except ACTOR_LOST as e:
                self._check_head()
                note(f"self-play actor {i} died ({type(e).__name__}); starting a new one")
                self._replace_selfplay(i)
                continue
            if not self._heard[i] and out[-1].games:
                self._heard[i] = True
                note(f"self-play actor {i} on node {self._node_of(i)}: first games in")
        return out

    def _node_of(self, i: int) -> str:
        try:
            return ray.get(self._node_refs[i], timeout=10)[:12]
        except (ray.exceptions.RayError, TimeoutError):
            return "(unknown)"

    def _replace_selfplay(self, i: int) -> None:
        for ref in [r for r, j in self.inflight.items() if j == i]:
            del self.inflight[ref]
        self.pending[i] = 0
        self.sent_version[i] = -1
        self._spawned += 1
        self.selfplay[i] = self._new_selfplay(self._seed0 + 7919 * self._spawned + i)
        self._node_refs[i] = self.selfplay[i].node.remote()
        self._heard[i] = False

    def _check_head(self) -> None:
        """An actor is lost: with the head gone too, no replacement can start, so stop
        (Ray itself ends a driver whose head is gone, a minute later, without a word)."""
        if self._gcs and not head_reachable(self._gcs):
            raise HeadLost(f"lost the Ray cluster's head (its GCS at {self._gcs} does not answer)")

    @staticmethod
    def ready(refs) -> bool:
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        return len(done) == len(refs)

    def results(self, refs, note=print):
        """Values of finished evaluation calls, or None if an eval actor died (the match is
        dropped; the eval actors are replaced, and the match comes due again)."""
        try:
            return ray.get(list(refs))
        except ACTOR_LOST as e:
            self._check_head()
            note(f"an evaluation actor died ({type(e).__name__}); match dropped, actors replaced")
            for a in self.evals:
                ray.kill(a)
            self.evals = [self._new_eval() for _ in range(self.cfg.ray.eval_actors)]
            return None

    def gate(self, cand_ref, best_ref, version: int) -> list:
        g = self.cfg.gating
        sims = g.simulations or self.cfg.mcts.simulations
        n = len(self.evals)
        pairs = g.games // 2
        refs, first = [], 0
        for j, actor in enumerate(self.evals):  # split pairs of games over the eval actors
            k = pairs // n + (1 if j < pairs % n else 0)
            if k:
                refs.append(actor.gate.remote(cand_ref, best_ref, 2 * k, version, first, sims))
            first += k
        return refs

    def anchors(self, best_ref, specs: list[str], step: int) -> list:
        a = self.cfg.anchors
        sims = a.simulations or self.cfg.mcts.simulations
        refs = []
        for spec in specs:
            actor = self.evals[self._next_eval % len(self.evals)]
            self._next_eval += 1
            refs.append((actor.anchor.remote(best_ref, spec, a.games, step, sims), spec))
        return refs

    def stop(self) -> None:
        if self.servers:
            self.servers.stop()
        for actor in self.selfplay + self.evals:
            ray.kill(actor)
        self.selfplay, self.evals, self.inflight = [], [], {}
