"""The arena's worker processes: each builds both players once and plays games from a task
queue; finished games come back on a result queue, in the order they finish.

A result a worker has put must never be lost: on a normal exit the queue's feeder thread is
joined, so everything put reaches the pipe before the process ends; only when the parent
stops a worker early (it no longer reads) does the worker skip that wait.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from typing import Any, Callable, Sequence

from dpv.errors import DPVError
from dpv.games import make_game
from dpv.play.match import GameTask, play_task
from dpv.play.plan import MatchPlan, build_players
from dpv.play.records import GameRecord
from dpv.players.base import Player


def _worker(plan: MatchPlan, worker: int, n_workers: int, tasks: Any, results: Any) -> None:
    """Worker process: build the players once, play games from the queue until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, lambda *_: _stop_now(results))  # -> finally: engines are closed
    players: tuple[Player, Player] | None = None
    try:
        players = build_players(plan, worker)
        if "torch" in sys.modules:  # share the cores between workers instead of oversubscribing
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
        game = make_game(plan.game_cfg)
        while (task := tasks.get()) is not None:
            results.put(("game", play_task(*players, plan.game_cfg, task, game).to_dict()))
    except DPVError as e:
        results.put(("error", str(e)))
    except Exception:
        results.put(("crash", traceback.format_exc()))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already closing the players
        for p in players or ():
            p.close()


def _stop_now(results: Any) -> None:
    # Only when the parent stops us early: it no longer reads, so do not wait to flush. On a
    # normal exit the queue's feeder thread is joined, so every result put reaches the pipe.
    results.cancel_join_thread()
    sys.exit(0)


def play_in_workers(plan: MatchPlan, tasks: Sequence[GameTask], workers: int,
                    finished: Callable[[GameRecord], None]) -> None:
    """Play `tasks` in `workers` processes, calling `finished` for each game as it ends.
    A worker's DPVError stops the match with that error; a crash prints its traceback."""
    # spawn, not fork: a parent that has torch's thread pools must not be forked
    ctx = mp.get_context("spawn")
    task_q, result_q = ctx.Queue(), ctx.Queue()
    # on Ctrl-C the unread tasks stay queued: exiting must not wait to flush them into the pipe
    task_q.cancel_join_thread()
    for t in tasks:
        task_q.put(t)
    workers = min(workers, len(tasks)) or 1
    for _ in range(workers):
        task_q.put(None)
    procs = [ctx.Process(target=_worker, args=(plan, w, workers, task_q, result_q), daemon=True)
             for w in range(workers)]
    for p in procs:
        p.start()
    done = 0
    try:
        while done < len(tasks):
            try:
                kind, payload = result_q.get(timeout=1.0)
            except queue.Empty:
                if any(p.is_alive() for p in procs):
                    continue
                try:  # a worker's last result can land between the timeout and its exit
                    kind, payload = result_q.get(timeout=5.0)
                except queue.Empty:
                    raise DPVError("all arena workers exited before the match finished") from None
            if kind == "game":
                finished(GameRecord.from_dict(payload))
                done += 1
            elif kind == "error":
                raise DPVError(payload)
            else:
                print(payload, file=sys.stderr)
                raise DPVError("an arena worker crashed (traceback above)")
    finally:
        if done == len(tasks):  # finished: workers have their stop signal and close their engines
            for p in procs:
                p.join(timeout=10)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
