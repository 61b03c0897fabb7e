import numpy as np
import pytest
import torch

from dpv.budget import Budget
from dpv.errors import ConfigError
from dpv.evaluator import BatchedEvaluator
from dpv.exits import (ConfidenceThreshold, DynamicThreshold, EntropyThreshold, ExitContext,
                       FixedExit, Patience, make_exit_policy, masked_softmax, run_offline)
from tests.test_nets import small_net

POLICIES = [FixedExit(1), FixedExit(-1), ConfidenceThreshold(0.08), DynamicThreshold(0.05, 0.08),
            DynamicThreshold(0.06, 0.0), EntropyThreshold(2.9), Patience(2)]


def random_positions(g, n, seed=0):
    rng = np.random.default_rng(seed)
    planes, masks = [], []
    for _ in range(n):
        s = g.new_state()
        for _ in range(int(rng.integers(0, 12))):
            if s.is_terminal():
                break
            s.apply(int(rng.choice(s.legal_actions())))
        if s.is_terminal():
            s = g.new_state()
        planes.append(s.observation())
        masks.append(s.legal_mask())
    return np.stack(planes), np.stack(masks)


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_policy_gives_same_decisions_online_and_offline(policy):
    net, g = small_net(seed=3)
    planes, masks = random_positions(g, 40)
    r = np.linspace(0, 1, 40)
    online = BatchedEvaluator(net, policy).evaluate(planes, masks, r)
    with torch.no_grad():
        trace = [o.policy_logits.numpy() for o in net(torch.from_numpy(planes))]
    offline = run_offline(policy, trace, masks, r)
    np.testing.assert_array_equal(online.exit_index, offline.exit_index)


def test_online_decisions_are_not_trivial():
    net, g = small_net(seed=3)
    planes, masks = random_positions(g, 40)
    ev = BatchedEvaluator(net, DynamicThreshold(0.05, 0.08)).evaluate(planes, masks, np.linspace(0, 1, 40))
    assert len(set(ev.exit_index.tolist())) > 1  # thresholds chosen so rows split across exits


def test_evaluator_outputs_match_full_forward_at_the_exit_used():
    net, g = small_net(seed=1)
    planes, masks = random_positions(g, 16, seed=1)
    ev = BatchedEvaluator(net, ConfidenceThreshold(0.07)).evaluate(planes, masks)
    with torch.no_grad():
        full = net(torch.from_numpy(planes))
    for i, k in enumerate(ev.exit_index):
        want = masked_softmax(full[k].policy_logits[i].numpy(), masks[i])
        np.testing.assert_allclose(ev.policy[i], want, rtol=1e-5, atol=1e-7)
        assert ev.value[i] == pytest.approx(float(full[k].value[i]), abs=1e-6)
        assert ev.flops[i] == net.flops().staged(k)
    assert np.all(ev.policy[~masks] == 0)


def test_fixed_exit_charges_fixed_cost_and_cap_limits_dynamic_exit():
    net, g = small_net(seed=1)
    planes, masks = random_positions(g, 8)
    fixed = BatchedEvaluator(net, FixedExit(1)).evaluate(planes, masks)
    assert np.all(fixed.exit_index == 1) and np.all(fixed.flops == net.flops().fixed(1))
    capped = BatchedEvaluator(net, ConfidenceThreshold(1.1)).evaluate(
        planes, masks, max_exit=np.array([0, 1, 2, 0, 1, 2, 0, 1]))
    assert capped.exit_index.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


def test_dynamic_threshold_rises_with_budget_used():
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 3))
    ctx = ExitContext(0, 2, [logits], None, np.array([0.0, 0.5, 1.0]))
    assert DynamicThreshold(0.6, 0.15).decide(ctx).tolist() == [True, True, False]
    assert DynamicThreshold(0.6, 0.0).decide(ctx).tolist() == [True, True, True]


def test_confidence_is_over_legal_moves_only():
    logits = np.log(np.array([[0.5, 0.3, 0.2]]))
    mask = np.array([[False, True, True]])
    ctx = ExitContext(0, 2, [logits], mask)
    assert ctx.probs().max() == pytest.approx(0.6)
    assert ConfidenceThreshold(0.55).decide(ctx).tolist() == [True]


def test_patience_waits_for_agreeing_exits():
    a = np.array([[2.0, 0.0], [2.0, 0.0]])
    b = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert Patience(2).decide(ExitContext(0, 3, [a])).tolist() == [False, False]
    assert Patience(2).decide(ExitContext(1, 3, [a, b])).tolist() == [True, False]


def test_budget_fraction_and_affordability():
    b = Budget.from_n_ref(10, 100.0)
    assert b.total == 1000.0 and b.fraction == 0.0
    b.charge(250)
    assert b.fraction == 0.25 and b.can_afford(750) and not b.can_afford(751)
    with pytest.raises(ConfigError, match="n_ref"):
        Budget.from_n_ref(0, 100.0)
    assert Budget().fraction == 0.0 and Budget().can_afford(1e30)


def test_exit_modes_map_to_policies():
    assert make_exit_policy("fixed", exit=1) == FixedExit(1)
    assert make_exit_policy("dynamic_static", tau0=0.5, alpha=0.3) == DynamicThreshold(0.5, 0.0)
    with pytest.raises(ConfigError, match="bogus"):
        make_exit_policy("bogus")
