"""Policies from eexit_vision (EERO, T-Tamer) as the exit policy of DPV-MCTS, through the
evaluator only: the search code has no notion of which policy it runs."""
from pathlib import Path

import numpy as np
import pytest
import torch

import dpv.mcts
from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.evaluator import BatchedEvaluator
from dpv.exits import run_offline
from dpv.games import make_game
from dpv.mcts import MCTS, run_searches
from dpv.nets import build_policy_value_net
from eexit_vision.policies import EERO, TTamer
from eexit_vision.traces import Trace

MASKED = -1e4  # illegal moves in the trace: zero probability, as the legal mask gives online


@pytest.fixture(scope="module")
def game():
    return make_game(GameConfig(name="tic_tac_toe"))


@pytest.fixture(scope="module")
def net(game):
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=3, channels=8, exits=(1, 2, 3), value_hidden=8), game).eval()
    with torch.no_grad():  # spread the random heads' confidences over (0, 1)
        for head in net.heads:
            head.policy_fc.weight.mul_(20.0)
    return net


def positions(game, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        s = game.new_state()
        for _ in range(int(rng.integers(0, 6))):
            if s.is_terminal():
                break
            s.apply(int(rng.choice(s.legal_actions())))
        if not s.is_terminal():
            out.append(s)
    return out


def record_trace(net, states):
    """Per-exit policy logits (illegal moves masked), label = the deepest exit's move."""
    planes = torch.from_numpy(np.stack([s.observation() for s in states]))
    mask = np.stack([s.legal_mask() for s in states])
    with torch.no_grad():
        logits = np.stack([np.where(mask, o.policy_logits.numpy(), MASKED) for o in net(planes)])
    flops = net.flops().staged_all()
    return Trace(logits, logits[-1].argmax(-1), flops, logits.shape[-1], "ttt-random"), planes.numpy(), mask


@pytest.mark.parametrize("which", ["eero", "ttamer"])
def test_vision_policy_runs_as_dpv_mcts_exit_policy(game, net, which):
    trace, _, _ = record_trace(net, positions(game, 200, seed=0))
    flops = trace.flops
    policy = EERO.fit(trace, float((flops[0] + flops[-1]) / 2)) if which == "eero" else TTamer.fit(trace, 0.0)
    evaluator = BatchedEvaluator(net, policy)

    # the evaluator's per-row exits are the policy's offline decisions on the same outputs
    probe, planes, mask = record_trace(net, positions(game, 64, seed=1))
    ev = evaluator.evaluate(planes, mask)
    np.testing.assert_array_equal(ev.exit_index, run_offline(policy, probe.logits, flops=flops).exit_index)
    assert len(np.unique(ev.exit_index)) > 1  # the policy really decides

    cfg = MCTSConfig(exit_mode="dynamic", n_ref=6, leaves_per_call=4)
    states = positions(game, 3, seed=2)
    searches = [MCTS(game, cfg, evaluator, np.random.default_rng(i)) for i in range(len(states))]
    results = run_searches(searches, states, evaluator, add_noise=False)
    for r, s in zip(results, states):
        assert r.flops <= r.budget_flops
        assert r.exit_histogram.sum() == len(r.exits) > 0
        assert r.visits[~s.legal_mask()].sum() == 0
    assert sum((r.exit_histogram[:-1] > 0).any() for r in results) > 0  # early exits were taken


def test_search_code_does_not_know_vision_policies():
    src = " ".join(p.read_text() for p in Path(dpv.mcts.__file__).parent.glob("*.py"))
    for name in ("eexit_vision", "EERO", "TTamer", "LookThenLeap"):
        assert name not in src


def test_ttamer_recall_inside_dpv_mcts_answers_from_the_recalled_exit(game, net):
    """T-Tamer inside the search: every leaf evaluation answers with the policy and value of the
    exit T-Tamer recalls (the least loss seen), pays for the exits it computed, and some leaves
    really answer from an earlier exit than the one they stopped at."""
    from dpv.exits import ExitContext, masked_softmax

    trace, _, _ = record_trace(net, positions(game, 200, seed=0))
    policy = TTamer.fit(trace, 0.05)
    calls = []

    class Recording(BatchedEvaluator):
        def evaluate(self, planes, legal_mask, *args, **kwargs):
            ev = super().evaluate(planes, legal_mask, *args, **kwargs)
            calls.append((np.array(planes, dtype=np.float32), np.array(legal_mask), ev))
            return ev

    evaluator = Recording(net, policy)
    cfg = MCTSConfig(exit_mode="dynamic", n_ref=8, leaves_per_call=4)
    states = positions(game, 3, seed=2)
    searches = [MCTS(game, cfg, evaluator, np.random.default_rng(i)) for i in range(len(states))]
    results = run_searches(searches, states, evaluator, add_noise=False)
    assert all(r.flops <= r.budget_flops for r in results) and calls
    recalled = 0
    for planes, mask, ev in calls:
        with torch.no_grad():
            outs = net(torch.from_numpy(planes))
        logits = [o.policy_logits.numpy() for o in outs]
        for i, (stop, ans) in enumerate(zip(ev.exit_index, ev.answer_exit)):
            # the exit T-Tamer recalls from what this row computed (the search may cap its exit)
            seen = ExitContext(int(stop), net.num_exits, [l[i:i + 1] for l in logits[: stop + 1]], mask[i:i + 1])
            assert ans == policy.select(seen)[0]
            np.testing.assert_allclose(ev.policy[i], masked_softmax(outs[ans].policy_logits[i].numpy(), mask[i]),
                                       rtol=1e-5, atol=1e-6)
            assert ev.value[i] == pytest.approx(float(outs[ans].value[i]), abs=1e-5)
            assert ev.flops[i] == net.flops().staged(int(stop))  # it paid for every exit it ran
        recalled += int((ev.answer_exit < ev.exit_index).sum())
    assert recalled > 0
