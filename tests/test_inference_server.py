"""The batching inference server (issue 19): its core with in-process threads (no Ray), and
its Ray shell serving real self-play actors.

The core must give every caller what a local evaluator gives for the same rows (fp32,
to float rounding), batch callers together, keep per-row exit decisions and budgets, take new weights
between batches, and never wait on a caller that went away; on Ray, a dead game actor
does not stall the server, and a dead server is replaced while the run goes on."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.evaluator import BatchedEvaluator
from dpv.exits import ConfidenceThreshold, DynamicThreshold, FixedExit
from dpv.games import make_game
from dpv.inference import InferenceServer
from dpv.mcts import MCTS, run_searches
from dpv.nets import build_policy_value_net
from selfplay.config import CONFIG_DIR, load_run_config
from tests.test_exits import random_positions
from tests.test_nets import small_net

HANG = 120  # generous: only catches a hang


def in_threads(fns):
    """Run each fn in its own thread at once; their results (or exceptions) in order."""
    out = [None] * len(fns)
    start = threading.Barrier(len(fns))

    def run(i, fn):
        start.wait()
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            out[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
        assert not t.is_alive(), "a client hung"
    return out


@pytest.fixture(scope="module")
def go5():
    net, g = small_net(seed=3)
    planes, masks = random_positions(g, 48)
    return net, planes, masks


def assert_same_rows(a, b):
    np.testing.assert_array_equal(a.exit_index, b.exit_index)
    np.testing.assert_array_equal(a.flops, b.flops)
    # Not bitwise: a batch of 48 and one of 12 may sum in another order (oneDNN picks its
    # kernels by batch size and core count; CI's CPU differs by ~1e-8 here).
    np.testing.assert_allclose(a.policy, b.policy, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("policy", [DynamicThreshold(0.05, 0.08), FixedExit(-1), FixedExit(0)], ids=repr)
def test_fp32_server_rows_equal_local_rows(go5, policy):
    """Four callers with 12 rows each (own r per row) are served in shared batches; each
    gets, row for row, what a local evaluator of the same net gives for its rows alone."""
    net, planes, masks = go5
    r = np.linspace(0, 1, len(planes))
    server = InferenceServer(net, max_batch=48, max_wait_ms=500)
    try:
        parts = [slice(12 * i, 12 * (i + 1)) for i in range(4)]
        got = in_threads([lambda s=s: server.evaluate_rows(policy, planes[s], masks[s], r[s]) for s in parts])
        assert server.stats.requests == 4 and server.stats.batches < 4  # callers shared batches
    finally:
        server.close()
    local = BatchedEvaluator(net, policy)
    for s, ev in zip(parts, got):
        assert_same_rows(ev, local.evaluate(planes[s], masks[s], r[s]))


def test_rows_of_different_exit_policies_are_evaluated_under_their_own(go5):
    net, planes, masks = go5
    policies = [FixedExit(0), ConfidenceThreshold(0.07), FixedExit(-1)]
    server = InferenceServer(net, max_batch=48, max_wait_ms=500)
    try:
        got = in_threads([lambda p=p: server.evaluate_rows(p, planes[:16], masks[:16]) for p in policies])
    finally:
        server.close()
    for p, ev in zip(policies, got):
        assert_same_rows(ev, BatchedEvaluator(net, p).evaluate(planes[:16], masks[:16]))


def test_searches_through_the_server_play_the_same_as_local_searches():
    """Three budgeted DPV-MCTS searches, each in its own thread through one server, give the
    visit counts the same searches give with a local evaluator."""
    game = make_game(GameConfig(name="tic_tac_toe"))
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=2, channels=8, exits=(1, 2), value_hidden=8), game).eval()
    cfg = MCTSConfig(exit_mode="dynamic", tau0=0.2, alpha=0.3, n_ref=12, leaves_per_call=3)
    policy = DynamicThreshold(cfg.tau0, cfg.alpha)
    states = [game.new_state() for _ in range(3)]
    for i, s in enumerate(states):
        s.apply(i)

    def search(ev, i):
        return run_searches([MCTS(game, cfg, ev, np.random.default_rng(i))], [states[i]], ev)[0]

    server = InferenceServer(net, max_batch=9, max_wait_ms=20)
    try:
        remote = in_threads([lambda i=i: search(server.client(policy), i) for i in range(3)])
    finally:
        server.close()
    local = [search(BatchedEvaluator(net, policy), i) for i in range(3)]
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a.visits, b.visits)
        np.testing.assert_array_equal(a.exit_histogram, b.exit_histogram)
        assert a.flops == b.flops


def test_autocast_bf16_stays_within_tolerance_and_few_exit_decisions_flip(go5):
    """bf16 under torch.autocast (CPU here): policy within 0.02 and value within 0.02 of
    fp32 (absolute), and at most 10% of the rows change the exit they stop at under
    DPV's dynamic threshold (measured: see benchmarks/exit_speed.py --precision)."""
    net, planes, masks = go5
    r = np.linspace(0, 1, len(planes))
    for policy in (FixedExit(-1), DynamicThreshold(0.05, 0.08)):
        fp32 = BatchedEvaluator(net, policy).evaluate(planes, masks, r)
        bf16 = BatchedEvaluator(net, policy, precision="bf16").evaluate(planes, masks, r)
        same = fp32.exit_index == bf16.exit_index
        assert same.mean() >= 0.9
        assert np.abs(fp32.policy[same] - bf16.policy[same]).max() <= 0.02
        assert np.abs(fp32.value[same] - bf16.value[same]).max() <= 0.02
        assert not np.array_equal(fp32.policy, bf16.policy)  # autocast really ran


def test_new_weights_reach_the_server_between_batches(go5):
    net, planes, masks = go5
    other, _ = small_net(seed=9)
    server = InferenceServer(small_net(seed=3)[0], max_wait_ms=0)
    try:
        before = server.evaluate_rows(FixedExit(-1), planes, masks)
        server.set_weights(other.state_dict(), version=7)
        after = server.evaluate_rows(FixedExit(-1), planes, masks)
        assert server.version == 7
    finally:
        server.close()
    assert_same_rows(before, BatchedEvaluator(net, FixedExit(-1)).evaluate(planes, masks))
    assert_same_rows(after, BatchedEvaluator(other, FixedExit(-1)).evaluate(planes, masks))


def test_a_client_that_goes_away_does_not_stall_the_others(go5):
    """max_batch counts on all three callers; one stops after two rounds (its thread ends
    with an error). The others' rounds go on, each batch waiting at most max_wait_ms."""
    net, planes, masks = go5
    server = InferenceServer(net, max_batch=3 * 8, max_wait_ms=20)

    def client(i, rounds, dies_after=None):
        out = []
        for k in range(rounds):
            if k == dies_after:
                raise RuntimeError("client died")
            out.append(server.evaluate_rows(FixedExit(-1), planes[8 * i: 8 * i + 8], masks[8 * i: 8 * i + 8]))
        return out

    try:
        got = in_threads([lambda: client(0, 10), lambda: client(1, 10), lambda: client(2, 10, dies_after=2)])
    finally:
        server.close()
    assert isinstance(got[2], RuntimeError)
    assert len(got[0]) == len(got[1]) == 10
    local = BatchedEvaluator(net, FixedExit(-1))
    for i in (0, 1):
        assert_same_rows(got[i][-1], local.evaluate(planes[8 * i: 8 * i + 8], masks[8 * i: 8 * i + 8]))
    assert server.stats.requests == 22


def test_a_bad_request_fails_its_caller_and_the_server_goes_on(go5):
    net, planes, masks = go5
    server = InferenceServer(net, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError):
            server.evaluate_rows(FixedExit(-1), planes[:4, :3], masks[:4])  # wrong plane count
        ev = server.evaluate_rows(FixedExit(-1), planes[:4], masks[:4])
    finally:
        server.close()
    assert_same_rows(ev, BatchedEvaluator(net, FixedExit(-1)).evaluate(planes[:4], masks[:4]))


def test_server_options_are_checked():
    from dpv.errors import ConfigError

    net, _ = small_net()
    with pytest.raises(ValueError, match="max_batch"):
        InferenceServer(net, max_batch=0)
    with pytest.raises(ValueError, match="precision"):
        BatchedEvaluator(net, FixedExit(-1), precision="fp8")
    for bad, field in [("selfplay.inference=gpu", "selfplay.inference"),
                       ("selfplay.server_precision=fp8", "selfplay.server_precision"),
                       ("selfplay.server_max_wait_ms=-1", "selfplay.server_max_wait_ms")]:
        with pytest.raises(ConfigError, match=field):
            load_run_config(CONFIG_DIR / "tictactoe.yaml", [bad])


# ------------------------------------------------------------------ on Ray
def server_cfg(actors=2, games=2):
    return load_run_config(CONFIG_DIR / "tictactoe.yaml",
                           [f"selfplay.actors={actors}", f"selfplay.concurrent_games={games}",
                            "mcts.simulations=8", "selfplay.moves_per_call=2",
                            "selfplay.inference=server", "selfplay.server_max_wait_ms=20"])


def test_a_dead_game_actor_does_not_stall_the_server(ray_session):
    from selfplay.actors import SelfPlayActor
    from selfplay.inference import InferenceServerActor

    cfg = server_cfg()
    d = cfg.to_dict()
    server = InferenceServerActor.options(num_cpus=0).remote(d, 2, 1, "cpu", None, 0)
    actors = [SelfPlayActor.options(num_cpus=1).remote(d, i, 1, "cpu", server) for i in range(2)]
    try:
        ray_session.get([a.play.remote(None, 0, -1, 1) for a in actors], timeout=HANG)
        doomed = actors[1].play.remote(None, 0, -1, 50)
        ray_session.kill(actors[1])
        report = ray_session.get(actors[0].play.remote(None, 0, -1, 6), timeout=HANG)
        assert report.moves == 12 and report.evaluations > 0
        with pytest.raises(ray_session.exceptions.RayActorError):
            ray_session.get(doomed, timeout=HANG)
        stats = ray_session.get(server.stats.remote(), timeout=HANG)
        assert stats.rows >= report.evaluations
    finally:
        for a in [server, *actors]:
            ray_session.kill(a)


def test_a_dead_server_is_replaced_and_play_goes_on(ray_session):
    from selfplay.driver import _ActorPool

    cfg = server_cfg(actors=1)
    pool = _ActorPool(cfg, session=1)
    pool.start()
    notes = []
    try:
        first = pool.servers.servers[0]
        pool.fill(None, -1, -1)
        ray_session.kill(first)
        got = []
        deadline = time.monotonic() + HANG
        while not got and time.monotonic() < deadline:
            got = pool.collect(1.0, notes.append)
            pool.fill(None, -1, -1)
        assert got and got[0].moves == 4 and got[0].evaluations > 0  # 2 games x 2 moves
        assert pool.servers.servers[0] is not first
        assert any("inference server 0 died" in n for n in notes)
        assert not any("self-play actor" in n and "died" in n for n in notes)  # the actor lived on
    finally:
        pool.stop()


def test_forward_rate_is_timed_between_batches_and_serving_goes_on(go5):
    net, planes, masks = go5
    server = InferenceServer(net, max_wait_ms=0)
    try:
        assert server.forward_rate(4, 0.05) > 0
        ev = server.evaluate_rows(FixedExit(-1), planes[:4].astype(np.uint8), masks[:4])  # 0/1 planes as uint8
    finally:
        server.close()
    assert_same_rows(ev, BatchedEvaluator(net, FixedExit(-1)).evaluate(planes[:4], masks[:4]))


@pytest.mark.slow
def test_compiled_fixed_exit_forward_on_padded_shapes_matches_eager(go5):
    """compile_fixed (torch.compile; CUDA graphs on a GPU) pads a batch to the next power of
    two and gives the eager rows back (about two minutes of compiling on a CPU)."""
    net, planes, masks = go5
    compiled = BatchedEvaluator(net, FixedExit(-1), compile_fixed=True)
    eager = BatchedEvaluator(net, FixedExit(-1))
    for n in (20, 7):  # buckets 32 and 8
        a, b = compiled.evaluate(planes[:n], masks[:n]), eager.evaluate(planes[:n], masks[:n])
        np.testing.assert_allclose(a.policy, b.policy, atol=1e-6)
        np.testing.assert_allclose(a.value, b.value, atol=1e-6)
