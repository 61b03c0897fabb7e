import numpy as np
import pytest
import torch

from dpv.errors import DPVError
from dpv.exits import EntropyThreshold, FixedExit, Patience, entropy, masked_softmax, run_offline
from eexit_vision.policies import EERO, LookThenLeap, TTamer, evaluate_policy, fit_msdnet, fit_to_budget
from eexit_vision.policies.eero import exit_rates, sequential_rates
from eexit_vision.policies.msdnet import solve_shares
from eexit_vision.policies.staged import classify_staged
from eexit_vision.studies import synthetic_trace
from eexit_vision.traces import Trace


@pytest.fixture(scope="module")
def traces():
    return synthetic_trace(seed=10, n=1500), synthetic_trace(seed=11, n=1500)


def budgets(flops):
    return np.linspace(flops[0] * 1.05, flops[-1], 6)


def test_msdnet_shares_are_geometric_and_meet_budget(traces):
    val, _ = traces
    for b in budgets(val.flops)[:-1]:
        q = solve_shares(val.flops, b)
        assert q @ val.flops == pytest.approx(b, rel=1e-9)
        ratios = q[1:] / q[:-1]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    np.testing.assert_array_equal(solve_shares(val.flops, val.flops[-1] * 2), [0, 0, 0, 1])


def test_msdnet_thresholds_give_planned_shares_on_validation(traces):
    val, _ = traces
    b = float(np.mean(val.flops[:2]) * 1.3)
    pol = fit_msdnet(val, b)
    r = evaluate_policy(pol, val)
    q = solve_shares(val.flops, b)
    np.testing.assert_allclose(r.exit_share[:-1], q[:-1], atol=2 / val.size)
    assert r.avg_flops <= b * 1.01


def test_eero_rates_solve_the_lagrangian(traces):
    val, _ = traces
    risks = 1 - (val.logits.argmax(-1) == val.labels).mean(1)
    b = float(val.flops[1])
    eps, mu = exit_rates(risks, val.flops, b, beta=0.04)
    assert eps.sum() == pytest.approx(1.0)
    assert mu > 0 and eps @ val.flops == pytest.approx(b, rel=1e-8)  # the constraint binds
    eps_free, mu_free = exit_rates(risks, val.flops, val.flops[-1] * 10, beta=0.04)
    assert mu_free == 0.0 and eps_free.argmax() == risks.argmin()  # no budget pressure: best head
    seq = sequential_rates(eps, 100, None)
    np.testing.assert_allclose(seq, np.minimum(np.cumsum(eps) + eps / 10, 1))


def test_eero_avg_flops_within_budget_on_test(traces):
    val, test = traces
    for b in budgets(val.flops):
        r = evaluate_policy(EERO.fit(val, float(b)), test)
        assert r.avg_flops <= b * 1.02, (b, r.avg_flops)


def test_eero_uses_only_unlabelled_calibration_logits(traces):
    val, test = traces
    b = float(val.flops[1])
    a = EERO.fit(val, b, calib_logits=test.logits)
    assert [len(s) for s in a.calib_scores] == [test.size] * (val.num_exits - 1)
    with pytest.raises(DPVError, match="calibration set is empty"):
        EERO.fit(val, b, calib_logits=np.zeros((val.num_exits, 0, val.num_classes), np.float32))


def test_budget_below_cheapest_exit_is_refused(traces):
    val, _ = traces
    tiny = float(val.flops[0] * 0.5)
    for fit in (lambda: EERO.fit(val, tiny), lambda: fit_msdnet(val, tiny),
                lambda: fit_to_budget(LookThenLeap, [0.1], val, tiny)):
        with pytest.raises(DPVError, match="below the cheapest exit"):
            fit()


def test_asti_stops_when_the_gain_is_below_c():
    # exit 1 gains 0.05 over exit 0 (stop at c=0.1), exit 2 would gain much more
    probs = [np.array([[0.6, 0.4]]), np.array([[0.65, 0.35]]), np.array([[0.99, 0.01]])]
    logits = np.stack([np.log(p) for p in probs])
    assert run_offline(LookThenLeap(0.1), logits).exit_index[0] == 1
    assert run_offline(LookThenLeap(0.01), logits).exit_index[0] == 2
    assert run_offline(LookThenLeap(1.0), logits).exit_index[0] == 1  # exit 0 never stops


def test_budget_fitted_families_respect_budget_on_validation(traces):
    val, _ = traces
    b = float(val.flops[1])
    for make, grid in ((LookThenLeap, np.linspace(-0.2, 1.01, 30)), (EntropyThreshold, np.linspace(0, 1.7, 30)),
                       (lambda p: Patience(int(p)), [1, 2, 3, 4]), (lambda k: FixedExit(int(k)), range(4)),
                       (lambda lam: TTamer.fit(val, lam), np.linspace(0, 1, 11))):
        pol, _ = fit_to_budget(make, grid, val, b)
        assert evaluate_policy(pol, val).avg_flops <= b


# ---- online (staged forward) == offline (trace)

def tiny_classifier():
    from eexit_vision.models import DigitsCNN
    torch.manual_seed(0)
    net = DigitsCNN((1, 8, 8), 10, extra_outputs=1, width=4).eval()
    with torch.no_grad():  # sharpen the random heads so confidences spread over (0, 1)
        for head in net.heads:
            head[-1].weight.mul_(30.0)
    return net


def net_trace(net, x, model_id="tiny"):
    with torch.no_grad():
        logits = torch.stack([net.class_logits(o) for o in net(x)]).numpy()
    return logits


def test_same_policy_object_same_decisions_online_and_offline():
    net = tiny_classifier()
    g = torch.Generator().manual_seed(1)
    x_val, x_test = torch.randn(300, 1, 8, 8, generator=g), torch.randn(200, 1, 8, 8, generator=g)
    val_logits = net_trace(net, x_val)
    labels = val_logits[-1].argmax(-1)  # a random net: let the last exit's answer be the label
    flops = net.flops().staged_all()
    val = Trace(val_logits, labels, flops, 10, "tiny")
    budget = float((flops[0] + flops[-1]) / 2)
    conf = masked_softmax(val_logits).max(-1)  # (K, N): pick ASTI's c and the entropy cut mid-range
    ent0 = entropy(masked_softmax(val_logits[0]))
    policies = [EERO.fit(val, budget), TTamer.fit(val, 0.0), fit_msdnet(val, budget),
                LookThenLeap(float(np.median(conf[1] - conf[0]))), EntropyThreshold(float(np.median(ent0))),
                Patience(2)]
    test_logits = net_trace(net, x_test)
    for pol in policies:
        off = run_offline(pol, test_logits, flops=flops)
        on = classify_staged(net, x_test, pol, flops)
        assert 0 < (off.exit_index < 3).sum() < len(x_test), type(pol).__name__  # decisions are not trivial
        np.testing.assert_array_equal(on.exit_index, off.exit_index, err_msg=type(pol).__name__)
        np.testing.assert_array_equal(on.answer_exit, off.answer_exit, err_msg=type(pol).__name__)
