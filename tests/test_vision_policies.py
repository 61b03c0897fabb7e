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
    assert r.avg_flops <= b  # shares rounded up: the validation average never exceeds the budget
    for b in budgets(val.flops):  # at every budget of the sweep
        assert evaluate_policy(fit_msdnet(val, float(b)), val).avg_flops <= b


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


def bisect(f, lo, hi, iters=200):
    """Root of a decreasing f on [lo, hi] by plain bisection (an independent solver)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("which", [1, 2])
def test_eero_rates_solve_eq_6_as_found_by_bisection_and_by_a_generic_solver(traces, which):
    """Eq. 6-7: min_eps sum eps R + beta KL(eps || pi), pi ∝ 1/B, s.t. simplex and eps.B <= budget.
    Prop. 3.8's multiplier by bisection on its defining equation, in raw FLOPs units, and the
    primal problem by SLSQP; both must give exit_rates' eps."""
    from scipy.optimize import minimize

    val, _ = traces
    risks = 1 - (val.logits.argmax(-1) == val.labels).mean(1)
    B, beta = val.flops, 0.04
    b = float(np.mean(val.flops[which - 1: which + 1]))
    eps, mu = exit_rates(risks, B, b, beta)
    pi = (1 / B) / (1 / B).sum()
    gibbs = lambda m: pi * np.exp(-(risks + m * B - (risks + m * B).min()) / beta)
    # Prop. 3.8: sum_l (b - B^l) pi^l exp(-(R^l + mu B^l)/beta) = 0, i.e. the plan's cost equals b
    mu_bis = bisect(lambda m: gibbs(m) @ B / gibbs(m).sum() - b, 0.0, 1e-3)
    want = gibbs(mu_bis) / gibbs(mu_bis).sum()
    np.testing.assert_allclose(eps, want, rtol=1e-7, atol=1e-12)
    assert mu == pytest.approx(mu_bis, rel=1e-6)
    objective = lambda e: e @ risks + beta * np.sum(e * np.log(np.maximum(e, 1e-300) / pi))
    res = minimize(objective, np.full(len(B), 1 / len(B)), method="SLSQP", bounds=[(0, 1)] * len(B),
                   constraints=[dict(type="eq", fun=lambda e: e.sum() - 1),
                                dict(type="ineq", fun=lambda e: (b - e @ B) / B[-1])],
                   options=dict(ftol=1e-14, maxiter=500))
    np.testing.assert_allclose(eps, res.x, atol=2e-4)
    assert objective(eps) <= objective(res.x) + 1e-10
    assert eps @ B <= b  # the plan itself is within the budget, not merely near it


def test_eero_calibrated_on_the_batch_it_serves_never_exceeds_the_budget():
    """6 seeds x 8 budgets (exit 0's FLOPs to the last exit's): CDFs from the unlabelled test
    batch give an average within the budget at every point, with no slack; CDFs from validation
    overrun at some points, never past the DKW bound EERO.budget_bound states."""
    from eexit_vision.studies import eero_budget_sweep

    rows = eero_budget_sweep(seeds=6, points=8, n=1500)
    on_test = [r for r in rows if r["calibration"] == "test"]
    on_val = [r for r in rows if r["calibration"] == "val"]
    assert len(on_test) == len(on_val) == 48
    assert max(r["test_avg_flops"] - r["budget"] for r in on_test) <= 0.0
    assert all(r["test_avg_flops"] <= r["planned"] for r in on_test)  # the exact plan bound
    assert all(r["test_avg_flops"] <= r["bound"] for r in on_val)
    assert any(r["overrun"] > 0 for r in on_val)  # why the test-batch calibration matters


def test_eero_validation_bound_is_the_dkw_formula():
    val = synthetic_trace(seed=3, n=400)
    pol = EERO.fit(val, float(val.flops[1]))
    assert pol.budget_bound(val.flops, 400) == pytest.approx(pol.planned_flops(val.flops))
    t = 2 * np.sqrt(np.log(4 * 3 / 0.1) / (2 * 400))
    planned = np.cumsum(pol.rates)[:3]
    shortfall = np.minimum(planned, np.maximum(t - (np.asarray(pol.rates_seq) - planned), 0))
    want = pol.planned_flops(val.flops) + np.diff(val.flops) @ shortfall
    assert pol.budget_bound(val.flops, 400, 400, delta=0.1) == pytest.approx(want)
    assert pol.budget_bound(val.flops, 400, 400, 0.1) < pol.budget_bound(val.flops, 400, 100, 0.1)
    with pytest.raises(DPVError, match="delta must be in"):
        pol.budget_bound(val.flops, 400, 400, delta=0.0)


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
