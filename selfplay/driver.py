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
from dataclasses import replace

import numpy as np
import ray
import torch

from dpv.games import make_game
from selfplay.actors import EvalActor, SelfPlayActor
from selfplay.anchors import anchor_name, missing_binary
from selfplay.config import RunConfig
from selfplay.gating import Tally, promote
from selfplay.learner import Learner, mean_metrics
from selfplay.monitor import Monitor
from selfplay.replay import ReplayBuffer
from selfplay.rundir import RunDir
from selfplay.schedule import Counters, Limits, allowed_steps, selfplay_exit

TRAIN_SLICE_S = 1.0  # longest stretch of training between two looks at the actors


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
        if cfg.train.variant == "multi_step" and limits.progress(self.counters) is None:
            from dpv.errors import ConfigError

            raise ConfigError("train.variant multi_step switches the self-play exit over the run: "
                              "give it a length with --max-games, --max-steps or --hours")

    # ------------------------------------------------------------ state on disk
    def restore(self) -> bool:
        """Continue from the newest checkpoint in the run dir (False when there is none)."""
        got = self.rd.latest()
        if got is None:
            return False
        st = got.state
        self.learner.load_state_dict(st["learner"])
        self.best_weights = st["best_model"]
        self.counters = Counters.from_dict(st["counters"])
        self.buffer.load(got.replay_path)
        if "rng" in st:
            self.rng.bit_generator.state = st["rng"]
        return True

    def save(self) -> None:
        c = self.counters
        payload = {"counters": c.to_dict(), "learner": self.learner.state_dict(),
                   "best_model": self.best_weights, "rng": self.rng.bit_generator.state,
                   "config": self.cfg.to_dict()}
        best_net = self._net_with(self.best_weights)
        path = self.rd.save(payload, self.buffer, best_net, self.cfg.game,
                            {"version": c.best_version, "step": c.best_step, "games": c.games})
        self.rd.log(f"checkpoint {path.name}: games {c.games} steps {c.steps} "
                    f"buffer {len(self.buffer)} best v{c.best_version}")

    def _net_with(self, weights):
        from dpv.nets import build_policy_value_net

        net = build_policy_value_net(self.cfg.net, self.game)
        net.load_state_dict(weights)
        return net

    # ------------------------------------------------------------ the loop
    def current_exit(self) -> int:
        return selfplay_exit(self.cfg.train.variant, self.cfg.selfplay.exit,
                             self.learner.net.num_exits, self.limits.progress(self.counters))

    def run(self) -> str:
        cfg, c = self.cfg, self.counters
        c.sessions += 1
        self.rd.log(f"session {c.sessions} starts: games {c.games} steps {c.steps} "
                    f"buffer {len(self.buffer)} best v{c.best_version} device {self.learner.device}")
        monitor = Monitor(self.rd.tb_dir, c.steps, self.learner.net.num_exits, self.progress)
        self.monitor = monitor
        interrupted = []

        def on_signal(signum, frame):
            if interrupted:  # a second Ctrl-C: stop at once (the last checkpoint stands)
                raise KeyboardInterrupt
            interrupted.append(signum)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        pool = _ActorPool(cfg, c.sessions)
        try:
            pool.start()
            self._loop(pool, monitor, interrupted)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            pool.stop()
        self.save()
        self.rd.log(f"session {c.sessions} ends: {self.stop_reason}")
        monitor.status(c, len(self.buffer), c.best_version, self.current_exit())
        monitor.close()
        return self.stop_reason or "stopped"

    def _loop(self, pool: "_ActorPool", monitor: Monitor, interrupted: list) -> None:
        cfg, c = self.cfg, self.counters
        t = cfg.train
        best_ref = ray.put(self.best_weights)
        last_tick = time.monotonic()
        last_save = last_tick
        pending_metrics = []
        gate = None  # (refs, candidate weights, version, step) of the match in flight
        anchors = None  # (refs with names, step)
        skipped = set()
        while True:
            now = time.monotonic()
            c.seconds += now - last_tick
            last_tick = now
            if interrupted:
                self.stop_reason = "interrupted (Ctrl-C): checkpoint written"
                return
            reason = self.limits.reached(c)
            if reason:
                self.stop_reason = reason
                return
            exit_index = self.current_exit()
            pool.fill(best_ref, c.best_version, exit_index)
            want_train = c.steps < self._allowed() and (self.limits.max_steps is None
                                                        or c.steps < self.limits.max_steps)
            # ---- self-play results
            for report in pool.collect(timeout=0.0 if want_train else 0.2):
                for g in report.games:
                    self.buffer.add_game(g)
                    c.games += 1
                    c.positions += len(g)
                monitor.selfplay(c.steps, c.games, report, len(self.buffer))
            # ---- training slice
            t0 = time.monotonic()
            while (c.steps < self._allowed() and not interrupted
                   and (self.limits.max_steps is None or c.steps < self.limits.max_steps)
                   and time.monotonic() - t0 < TRAIN_SLICE_S):
                batch = self.buffer.sample(t.batch_size, self.rng)
                pending_metrics.append(self.learner.step(batch))
                c.steps = self.learner.steps
                if c.steps % t.log_every_steps == 0:
                    monitor.train(c.steps, mean_metrics(pending_metrics))
                    pending_metrics = []
            # ---- gating (or, with gating off, plain refresh of the self-play network)
            if c.steps > 0 and c.steps - max(c.last_gate_step, gate[3] if gate else 0) >= cfg.gating.every_steps:
                if not cfg.gating.enabled:
                    self.best_weights = self.learner.weights_cpu()
                    c.model_version += 1
                    c.best_version, c.best_step, c.last_gate_step = c.model_version, c.steps, c.steps
                    best_ref = ray.put(self.best_weights)
                elif gate is None:
                    cand = self.learner.weights_cpu()
                    c.model_version += 1
                    refs = pool.gate(ray.put(cand), best_ref, c.model_version)
                    gate = (refs, cand, c.model_version, c.steps)
            if gate is not None and pool.ready(gate[0]):
                tally = sum(ray.get(gate[0]), Tally())
                _, cand, version, step = gate
                gate = None
                promoted = promote(tally, cfg.gating.threshold)
                c.gating_matches += 1
                c.last_gate_step = step
                if promoted:
                    c.gating_promotions += 1
                    self.best_weights, c.best_version, c.best_step = cand, version, step
                    best_ref = ray.put(cand)
                monitor.gating(c.steps, tally, promoted, c.gating_promotions)
                self._note(f"gating at step {step}: candidate v{version} scored {tally.score:.1%} "
                           f"({tally.wins}-{tally.losses}-{tally.draws}) -> "
                           f"{'new best' if promoted else 'best stays v' + str(c.best_version)}")
            # ---- anchors
            every = cfg.anchors.every_steps
            if every and anchors is None and c.steps > 0 and c.steps - c.last_anchor_step >= every:
                specs = []
                for spec in cfg.anchors.players:
                    exe = missing_binary(spec)
                    if exe is None:
                        specs.append(spec)
                    elif spec not in skipped:
                        skipped.add(spec)
                        self._note(f"anchor {spec} skipped: {exe} is not installed")
                if specs:
                    anchors = (pool.anchors(best_ref, specs, c.steps), c.steps, c.best_version)
                else:
                    c.last_anchor_step = c.steps
            if anchors is not None and pool.ready([r for r, _ in anchors[0]]):
                refs, step, version = anchors
                anchors = None
                c.last_anchor_step = step
                for ref, spec in refs:
                    tally = ray.get(ref)
                    monitor.anchor(step, anchor_name(spec), tally)
                    self._note(f"anchor at step {step}: best v{version} vs {spec}: "
                               f"{tally.score:.1%} ({tally.wins}-{tally.losses}-{tally.draws})")
            # ---- checkpoint and progress line
            if time.monotonic() - last_save >= t.checkpoint_seconds:
                self.save()
                monitor.flush()
                last_save = time.monotonic()
            monitor.status(c, len(self.buffer), c.best_version, exit_index)

    def _allowed(self) -> int:
        t = self.cfg.train
        return allowed_steps(self.counters.games, t.start_games, t.steps_per_block, t.games_per_block)

    def _note(self, line: str) -> None:
        self.rd.log(line)
        self.echo(line)


class _ActorPool:
    """Self-play and evaluation actors, with a bounded number of calls queued to each."""

    def __init__(self, cfg: RunConfig, session: int):
        self.cfg = cfg
        self.session = session
        self.cfg_dict = cfg.to_dict()
        self.selfplay: list = []
        self.evals: list = []
        self.inflight: dict = {}  # ref -> actor index
        self.pending: list[int] = []
        self.sent_version: list[int] = []
        self._next_eval = 0

    def _gpu_share(self) -> float:
        if self.cfg.selfplay.device != "auto":
            return 0.0
        gpus = ray.cluster_resources().get("GPU", 0.0)
        n = self.cfg.selfplay.actors
        return min(1.0, gpus / n) if gpus else 0.0

    def start(self) -> None:
        sp = self.cfg.selfplay
        gpu = self._gpu_share()
        seed0 = self.cfg.train.seed * 1_000_003 + self.session * 1009  # a resumed run plays new games
        self.selfplay = [
            SelfPlayActor.options(num_cpus=sp.threads_per_actor, num_gpus=gpu,
                                  max_pending_calls=sp.max_pending_calls).remote(
                self.cfg_dict, seed0 + i, sp.threads_per_actor, "cuda" if gpu else "cpu")
            for i in range(sp.actors)]
        self.evals = [EvalActor.options(num_cpus=1).remote(self.cfg_dict, 1)
                      for _ in range(self.cfg.ray.eval_actors)]
        self.pending = [0] * sp.actors
        self.sent_version = [-1] * sp.actors

    def fill(self, weights_ref, version: int, exit_index: int) -> None:
        sp = self.cfg.selfplay
        for i, actor in enumerate(self.selfplay):
            while self.pending[i] < sp.max_pending_calls:
                w = weights_ref if self.sent_version[i] != version else None
                ref = actor.play.remote(w, version, exit_index, sp.moves_per_call)
                self.sent_version[i] = version
                self.inflight[ref] = i
                self.pending[i] += 1

    def collect(self, timeout: float):
        if not self.inflight:
            return []
        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        out = []
        for ref in ready:
            i = self.inflight.pop(ref)
            self.pending[i] -= 1
            out.append(ray.get(ref))
        return out

    @staticmethod
    def ready(refs) -> bool:
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        return len(done) == len(refs)

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
        for actor in self.selfplay + self.evals:
            ray.kill(actor)
        self.selfplay, self.evals, self.inflight = [], [], {}
