"""A batching inference server: many searches' leaf rows in, few large network calls out.

Game actors are CPU-bound (tree, game engine, planes); the network wants large batches. The
server owns the network; clients `submit` rows (planes, legal mask, and per row the search's
budget fraction r and exit cap) with the exit policy their search runs. One serving thread
gathers requests until `max_batch` rows are in or `max_wait_ms` has passed since the first
one, runs one `BatchedEvaluator` call per exit policy present (exit decisions and budgets
stay per row, recall policies still see every exit's outputs), and answers each request
with its own rows. A client that goes away costs nothing: no batch waits for it longer than
`max_wait_ms`. Weights are swapped between batches.

Threads, not processes: this core runs wherever torch does (benchmarks and tests without
Ray); the Ray shell in selfplay/inference.py only moves requests to it.
`ServerEvaluator` is the `Evaluator` a search holds: it forwards to any `EvaluationService`
(this server in-process, or the Ray shell's client)."""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from dpv.evaluator import (BatchedEvaluator, BoolArray, Evaluation, Evaluator, FloatArray,
                           IntArray, exit_costs)
from dpv.exits import ExitPolicy, FixedExit
from dpv.games.base import GameState
from dpv.nets.multi_exit import FlopsTable, MultiExitNet


class EvaluationService(Protocol):
    """Anything that evaluates rows for a search under an exit policy (the server, or a
    remote client of it)."""

    def evaluate_rows(self, policy: ExitPolicy, planes: FloatArray, legal_mask: BoolArray,
                      budget_fraction: FloatArray | None = None,
                      max_exit: IntArray | None = None) -> Evaluation: ...


@dataclass
class _Request:
    policy: ExitPolicy
    planes: FloatArray
    legal_mask: BoolArray
    budget_fraction: FloatArray | None
    max_exit: IntArray | None
    future: Future[Evaluation] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return int(self.legal_mask.shape[0])


@dataclass
class _Job:
    fn: Callable[[], float]
    future: Future[float] = field(default_factory=Future)


@dataclass
class ServerStats:
    batches: int = 0  # network batches run (one per exit policy present in a gathered batch)
    rows: int = 0
    requests: int = 0
    busy_seconds: float = 0.0  # inside the evaluator
    wait_seconds: float = 0.0  # gathering: from the first request of a batch to its start

    @property
    def mean_batch(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


def _concat(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if any(p is None for p in parts):
        if all(p is None for p in parts):
            return None
        raise ValueError("budget_fraction / max_exit: give them for every request of a policy or none")
    return np.concatenate([p for p in parts if p is not None])


def split_evaluation(ev: Evaluation, sizes: Sequence[int]) -> list[Evaluation]:
    """Rows of one evaluation back to the requests they came from, in order."""
    out, start = [], 0
    for n in sizes:
        sl = slice(start, start + n)
        out.append(Evaluation(ev.policy[sl], ev.value[sl], ev.exit_index[sl], ev.flops[sl],
                              None if ev.answer_exit is None else ev.answer_exit[sl]))
        start += n
    return out


class InferenceServer:
    """The batching core: one serving thread, any number of client threads.

    `evaluator_options` go to each `BatchedEvaluator` (precision, channels_last, compaction,
    compile_fixed)."""

    def __init__(self, net: MultiExitNet, device: str | torch.device = "cpu",
                 max_batch: int = 1024, max_wait_ms: float = 2.0,
                 evaluator_options: Mapping[str, Any] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.options = dict(evaluator_options or {})
        self.flops_table: FlopsTable = net.flops()
        self.num_exits = net.num_exits
        self.version = -1
        self.stats = ServerStats()
        self._evaluators: dict[ExitPolicy, BatchedEvaluator] = {}
        # requests, None (wake up: weights or close), or a job to run between batches
        self._queue: queue.Queue[_Request | _Job | None] = queue.Queue()
        self._held: _Request | None = None  # a request that did not fit the last batch
        self._weights: tuple[Mapping[str, torch.Tensor], int] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="inference-server", daemon=True)
        self._thread.start()

    # ---- client side
    def submit(self, policy: ExitPolicy, planes: FloatArray, legal_mask: BoolArray,
               budget_fraction: FloatArray | None = None,
               max_exit: IntArray | None = None) -> Future[Evaluation]:
        if self._closed:
            raise RuntimeError("the inference server is closed")
        req = _Request(policy, planes, legal_mask, budget_fraction, max_exit)
        self._queue.put(req)
        return req.future

    def evaluate_rows(self, policy: ExitPolicy, planes: FloatArray, legal_mask: BoolArray,
                      budget_fraction: FloatArray | None = None,
                      max_exit: IntArray | None = None) -> Evaluation:
        return self.submit(policy, planes, legal_mask, budget_fraction, max_exit).result()

    def client(self, policy: ExitPolicy) -> ServerEvaluator:
        """The `Evaluator` a search under `policy` holds."""
        return ServerEvaluator(self, policy, self.flops_table)

    def set_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """New weights, loaded by the serving thread before its next batch."""
        with self._lock:
            self._weights = (state_dict, version)
        self._queue.put(None)  # wake the thread if idle

    def forward_rate(self, batch: int, seconds: float) -> float:
        """Rows/s of the bare deepest-exit forward at `batch` rows, timed in the serving
        thread between batches (same threads, precision and layout as served batches): the
        ceiling a benchmark compares the server with."""
        x = (torch.rand((batch,) + tuple(self.net.example_input(1).shape[1:])) < 0.3).float()
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)

        def run() -> float:
            ev = self._evaluator(FixedExit(-1))  # the served one (its compiled graphs too)
            with torch.inference_mode(), ev.autocast():
                xd = ev.prepare(x.numpy())
                k = self.num_exits - 1
                for _ in range(3):  # warm-up
                    ev.forward_to(xd, k)
                sync()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    ev.forward_to(xd, k)
                    n += 1
                sync()
                return n * batch / (time.perf_counter() - t0)

        job = _Job(run)
        self._queue.put(job)
        return job.future.result()

    def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    # ---- serving thread
    def _evaluator(self, policy: ExitPolicy) -> BatchedEvaluator:
        ev = self._evaluators.get(policy)
        if ev is None:  # all share the one network
            ev = self._evaluators[policy] = BatchedEvaluator(self.net, policy, self.device, **self.options)
        return ev

    def _load_pending_weights(self) -> None:
        with self._lock:
            pending, self._weights = self._weights, None
        if pending is not None:
            self.net.load_state_dict(pending[0])
            self.net.eval()
            self.version = pending[1]  # loaded in place: every evaluator shares the net

    def _gather(self) -> list[_Request]:
        """Block for a first request, then take more until max_batch rows or max_wait."""
        first: _Request | _Job | None = self._held
        self._held = None
        while not isinstance(first, _Request):
            first = self._queue.get()
            if isinstance(first, _Job):
                self._do(first)
            elif first is None:
                self._load_pending_weights()
                if self._closed:
                    return []
        batch, rows = [first], first.rows
        t0 = time.perf_counter()
        deadline = t0 + self.max_wait
        while rows < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                req = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(req, _Job):
                self._do(req)
                continue
            if req is None:
                if self._closed:
                    break
                continue
            if rows + req.rows > self.max_batch:
                self._held = req  # first in the next batch: order is kept
                break
            batch.append(req)
            rows += req.rows
        self.stats.wait_seconds += time.perf_counter() - t0
        return batch

    @staticmethod
    def _do(job: _Job) -> None:
        try:
            job.future.set_result(job.fn())
        except Exception as e:  # the caller gets it
            job.future.set_exception(e)

    def _serve(self) -> None:
        while True:
            batch = self._gather()
            if not batch:
                return
            self._load_pending_weights()
            groups: dict[ExitPolicy, list[_Request]] = {}
            for req in batch:
                groups.setdefault(req.policy, []).append(req)
            for policy, reqs in groups.items():
                self._run(policy, reqs)

    def _run(self, policy: ExitPolicy, reqs: list[_Request]) -> None:
        t0 = time.perf_counter()
        try:
            planes = np.concatenate([r.planes for r in reqs])
            mask = np.concatenate([r.legal_mask for r in reqs])
            r = _concat([r.budget_fraction for r in reqs])
            cap = _concat([r.max_exit for r in reqs])
            ev = self._evaluator(policy).evaluate(planes, mask, r, cap)
            parts = split_evaluation(ev, [q.rows for q in reqs])
        except Exception as e:  # a bad request fails its batch's callers, not the server
            for q in reqs:
                q.future.set_exception(e)
            return
        finally:
            self.stats.busy_seconds += time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.rows += len(mask)
        self.stats.requests += len(reqs)
        for q, part in zip(reqs, parts):
            q.future.set_result(part)


class ServerEvaluator(Evaluator):
    """A search's evaluator whose rows go to an `EvaluationService` under `policy`; what an
    exit costs is read from the network's FLOPs table, as `BatchedEvaluator` charges it."""

    def __init__(self, service: EvaluationService, policy: ExitPolicy, flops: FlopsTable):
        self.service = service
        self.policy = policy
        self.costs = exit_costs(flops, policy)
        self.deepest = float(flops.fixed_all()[-1])
        self.num_exits = len(self.costs)

    def exit_cost(self, k: int) -> float:
        return float(self.costs[k])

    def deepest_flops(self) -> float:
        return self.deepest

    def evaluate(self, planes: FloatArray | None, legal_mask: BoolArray,
                 budget_fraction: FloatArray | None = None,
                 max_exit: IntArray | None = None,
                 states: Sequence[GameState] | None = None) -> Evaluation:
        if planes is None:
            raise ValueError("ServerEvaluator needs observation planes (wants_planes)")
        return self.service.evaluate_rows(self.policy, planes, legal_mask, budget_fraction, max_exit)
