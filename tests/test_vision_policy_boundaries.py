"""Budgeted exit policies on tiny hand-made cases: boundaries, legal masks, exact thresholds.

Written against the mutants that survived test_vision_policies.py (mutmut over
eexit_vision/policies/; docs/fidelity.md): each case has one answer worked out by hand."""
import numpy as np
import pytest

from dpv.exits import ExitContext, run_offline
from eexit_vision.policies import EERO, LookThenLeap, PerExitThreshold, evaluate_policy, fit_msdnet
from eexit_vision.policies.eero import exit_rates, sequential_rates
from eexit_vision.policies.msdnet import solve_shares
from eexit_vision.policies.scores import score, tie_break
from eexit_vision.studies import synthetic_trace
from eexit_vision.traces import Trace


def ctx(*exits, mask=None, num_exits=3):
    """ExitContext at the last given exit; each exit is a list of probability rows."""
    return ExitContext(len(exits) - 1, num_exits, [np.log(np.asarray(e, dtype=np.float64)) for e in exits], mask)


# ---- MSDNet thresholds

def test_msdnet_shares_at_the_ends_of_the_budget_range():
    flops = np.array([1.0, 2.0, 4.0])
    np.testing.assert_array_equal(solve_shares(flops, 4.0), [0, 0, 1])  # the last exit is affordable
    np.testing.assert_array_equal(solve_shares(flops, 1.0), [1, 0, 0])  # only the first is


def test_msdnet_thresholds_on_a_four_sample_trace():
    # two exits, FLOPs 1 and 3, budget 2.5: q = (1/4, 3/4), so ceil(4/4) = 1 sample stops at exit 0
    logits = np.log(np.array([[[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.55, 0.45]],
                              [[0.5, 0.5]] * 4]))
    val = Trace(logits, np.zeros(4, dtype=np.int64), [1.0, 3.0], 2, "tiny")
    pol = fit_msdnet(val, 2.5)
    assert pol.thresholds[0] == pytest.approx(0.9) and pol.thresholds[-1] == -np.inf
    r = evaluate_policy(pol, val)
    np.testing.assert_array_equal(r.exit_index, [0, 1, 1, 1])
    assert r.avg_flops == 2.5
    # a budget that affords the last exit: nobody stops early
    assert evaluate_policy(fit_msdnet(val, 3.0), val).exit_index.tolist() == [1, 1, 1, 1]
    assert fit_msdnet(val, 2.5, score_name="margin").score == "margin"


def test_msdnet_three_exits_every_threshold_read_on_the_samples_still_running():
    # FLOPs (1, 2, 3), budget 2: q ∝ p^k with p = 1 gives thirds; 6 samples: 2 stop at exit 0,
    # then the 2 most confident of the 4 still running stop at exit 1
    conf0 = [0.95, 0.9, 0.8, 0.7, 0.6, 0.55]
    conf1 = [0.5, 0.5, 0.9, 0.6, 0.85, 0.7]
    logits = np.log(np.array([[[c, 1 - c] for c in conf0], [[c, 1 - c] for c in conf1], [[0.5, 0.5]] * 6]))
    val = Trace(logits, np.zeros(6, dtype=np.int64), [1.0, 2.0, 3.0], 2, "tiny3")
    pol = fit_msdnet(val, 2.0)
    assert pol.thresholds[:2] == pytest.approx((0.9, 0.85))
    assert evaluate_policy(pol, val).exit_index.tolist() == [0, 0, 1, 2, 1, 2]
    rich = fit_msdnet(val, 3.0)  # the last exit is affordable: no exit before it takes anyone
    assert rich.thresholds == (np.inf, np.inf, -np.inf)
    assert evaluate_policy(rich, val).exit_index.tolist() == [2] * 6


def test_per_exit_threshold_scores_legal_moves_only():
    pol = PerExitThreshold((0.7, -np.inf))
    c = ctx([[0.6, 0.3, 0.1]], mask=np.array([[False, True, True]]), num_exits=2)
    assert pol.decide(c).tolist() == [True]  # 0.3 / 0.4 = 0.75 over the legal moves
    assert pol.decide(ctx([[0.6, 0.3, 0.1]], num_exits=2)).tolist() == [False]


# ---- ASTI look-then-leap

def test_asti_gain_equal_to_c_goes_on_and_rows_decide_separately():
    # exit 0 -> exit 1: gains 0.5 (exactly c) and 0.0
    c = ctx([[0.5, 0.5], [0.5, 0.5]], [[1.0, 1e-300], [0.5, 0.5]])  # softmax exactly (1, 0)
    assert LookThenLeap(0.5).decide(c).tolist() == [False, True]
    first = LookThenLeap(0.5).decide(ctx([[0.5, 0.5], [0.9, 0.1]]))
    assert first.dtype == bool and first.tolist() == [False, False]  # exit 0 never stops


def test_asti_utility_is_over_legal_moves():
    mask = np.array([[False, True, True]])
    # over all moves the gain is 0.7 - 0.5 = 0.2; over the legal ones 0.7/0.8 - 0.25/0.5 = 0.375
    c = ctx([[0.5, 0.25, 0.25]], [[0.2, 0.7, 0.1]], mask=mask)
    assert LookThenLeap(0.3).decide(c).tolist() == [False]
    assert LookThenLeap(0.3).decide(ctx([[0.5, 0.25, 0.25]], [[0.2, 0.7, 0.1]])).tolist() == [True]


# ---- EERO

def test_eero_all_mass_on_the_cheapest_head_when_the_budget_is_its_cost():
    costs = np.array([1.0, 2.0, 4.0])
    eps, mu = exit_rates(np.array([0.5, 0.3, 0.1]), costs, 1.0, 0.04)
    np.testing.assert_allclose(eps, [1, 0, 0], atol=1e-15)
    assert eps @ costs <= 1.0 and mu > 0


def test_eero_sequential_rates_with_an_explicit_c():
    eps = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(sequential_rates(eps, 100, 0.4), [0.24, 0.54, 1.0])


def eero_one_head(logits, rate):
    probe = EERO((), (), (), 0.0)
    return EERO((np.sort(probe.head_score(logits, None)),), (rate,), (rate, 1 - rate), 0.0)


def test_eero_stops_where_the_empirical_cdf_reaches_one_minus_the_rate():
    # F(t) = #{calibration scores <= t} / N; served its own calibration batch of 4 with rate
    # 1/4, the two highest scores have F = 3/4 and 1 >= 3/4 and stop
    logits = np.log(np.array([[0.6, 0.4], [0.9, 0.1], [0.7, 0.3], [0.8, 0.2]]))
    pol = eero_one_head(logits, 0.25)
    assert pol.decide(ExitContext(0, 2, [logits])).tolist() == [False, True, False, True]
    last = pol.decide(ExitContext(1, 2, [logits, logits]))
    assert last.dtype == bool and last.tolist() == [True] * 4  # the last head takes the rest


def test_eero_scores_legal_moves_only():
    logits = np.log(np.array([[0.52, 0.3, 0.18], [0.4, 0.35, 0.25], [0.34, 0.33, 0.33], [0.6, 0.2, 0.2]]))
    mask = np.array([[False, True, True]] * 4)
    pol = eero_one_head(logits, 0.25)  # calibration scores (all moves): 0.52, 0.4, 0.34, 0.6
    # over all moves rows 0 and 3 reach F >= 3/4; over the legal moves rows 0 and 1 do
    # (0.3/0.48 = 0.625 and 0.35/0.6 = 0.583 against rows 2 and 3 at 0.5)
    assert pol.decide(ExitContext(0, 2, [logits])).tolist() == [True, False, False, True]
    assert pol.decide(ExitContext(0, 2, [logits], mask)).tolist() == [True, True, False, False]


def test_eero_bound_defaults_to_delta_five_percent():
    val = synthetic_trace(seed=3, n=400)
    pol = EERO.fit(val, float(val.flops[1]))
    assert pol.budget_bound(val.flops, 400, 400) == pol.budget_bound(val.flops, 400, 400, 0.05)


# ---- scores and EERO's tie-breaking noise

def test_scores_use_the_legal_mask():
    logits = np.log(np.array([[0.6, 0.3, 0.1]]))
    mask = np.array([[False, True, True]])
    assert score("max_prob", logits, mask)[0] == pytest.approx(0.75)
    assert score("margin", logits, mask)[0] == pytest.approx(0.5)
    assert score("max_prob", logits)[0] == pytest.approx(0.6)


def test_tie_break_is_small_per_row_and_independent_of_batch_and_precision():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7))
    u = 1e-5
    t = tie_break(z, u)
    assert ((t >= 0) & (t < u)).all() and len(np.unique(t)) == len(t)
    np.testing.assert_array_equal(t[3:4], tie_break(z[3:4], u))  # a row's noise is its own
    np.testing.assert_array_equal(t, tie_break(z.astype(np.float32), u))  # online float32 = offline


def test_eero_same_decisions_whatever_the_batch():
    val, test = synthetic_trace(seed=5, n=300), synthetic_trace(seed=6, n=300)
    pol = EERO.fit(val, float(val.flops[1]))
    whole = run_offline(pol, test.logits).exit_index
    halves = np.concatenate([run_offline(pol, test.logits[:, :150]).exit_index,
                             run_offline(pol, test.logits[:, 150:]).exit_index])
    np.testing.assert_array_equal(whole, halves)


# ---- EERO's fit checks its inputs and keeps what it was given

def test_eero_fit_refuses_mismatched_calibration_and_non_positive_beta():
    from dpv.errors import DPVError
    val = synthetic_trace(seed=4, n=200)
    b = float(val.flops[1])
    with pytest.raises(DPVError, match=r"EERO: calibration logits \(3, 200, 5\) do not match the model's 4 exits x 5 classes"):
        EERO.fit(val, b, calib_logits=val.logits[:3])
    with pytest.raises(DPVError, match="do not match"):
        EERO.fit(val, b, calib_logits=val.logits[..., :4])
    for beta in (0.0, -0.1):
        with pytest.raises(DPVError, match=f"EERO: beta must be > 0, got {beta}"):
            EERO.fit(val, b, beta=beta)
    with pytest.raises(DPVError, match=r"^EERO: the calibration set is empty \(need at least one unlabelled sample\)$"):
        EERO.fit(val, b, calib_logits=val.logits[:, :0])


def test_eero_fit_keeps_c_mu_and_score():
    val = synthetic_trace(seed=4, n=400)
    pol = EERO.fit(val, float(val.flops[1]), c=0.4, score_name="margin")
    eps = np.asarray(pol.rates)
    np.testing.assert_allclose(pol.rates_seq, np.minimum(np.cumsum(eps) + 0.4 / 20, 1)[:-1])
    assert pol.score == "margin" and isinstance(pol.mu, float) and pol.mu > 0


def test_eero_bound_with_one_auxiliary_head_and_delta_limits():
    from dpv.errors import DPVError
    val4 = synthetic_trace(seed=4, n=400)
    val = Trace(val4.logits[[0, 3]], val4.labels, val4.flops[[0, 3]], val4.num_classes, "two-heads")
    pol = EERO.fit(val, float(val.flops.mean()))
    assert pol.budget_bound(val.flops, 400, 400) > pol.planned_flops(val.flops)
    for delta in (1.0, 1.5):
        with pytest.raises(DPVError, match="delta must be in"):
            pol.budget_bound(val.flops, 400, 400, delta)


# ---- scoring a policy on a trace, and fitting a family to a budget

def test_evaluate_policy_with_a_combiner_answers_with_the_combination_at_the_stop():
    from dpv.exits import FixedExit
    from eexit_vision.combiners import LogitVoting
    # 3 samples x 2 exits x 2 classes: exit 0 says class 0, exit 1 says class 1 softly
    logits = np.array([[[3.0, 0.0]] * 3, [[0.0, 1.0]] * 3])
    trace = Trace(logits, np.array([0, 0, 1]), [1.0, 2.0], 2, "vote")
    at1 = evaluate_policy(FixedExit(1), trace, LogitVoting())
    np.testing.assert_array_equal(at1.prediction, [0, 0, 0])  # votes (3, 1): class 0
    np.testing.assert_array_equal(at1.exit_index, [1, 1, 1])
    assert at1.accuracy == pytest.approx(2 / 3)
    plain = evaluate_policy(FixedExit(1), trace)
    np.testing.assert_array_equal(plain.prediction, [1, 1, 1])
    assert at1.prediction.dtype == np.int64
    at0 = evaluate_policy(FixedExit(0), trace, LogitVoting())
    np.testing.assert_array_equal(at0.prediction, [0, 0, 0])
    np.testing.assert_array_equal(at0.exit_share, [1.0, 0.0])  # one share per exit, unused ones too


def test_evaluate_policy_combines_each_row_up_to_the_exit_it_stopped_at():
    from dpv.exits import ConfidenceThreshold
    from eexit_vision.combiners import LogitVoting
    # with ConfidenceThreshold(0.9) row 0 stops at exit 0, row 1 at exit 1, row 2 at exit 2;
    # voting over exits 0..stop gives 0, 2, 1, and every other span of exits would not
    logits = np.array([[[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
                       [[0.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]],
                       [[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.5, 0.3]]])
    trace = Trace(logits, np.array([0, 2, 1]), [1.0, 2.0, 3.0], 3, "spans")
    r = evaluate_policy(ConfidenceThreshold(0.9), trace, LogitVoting())
    np.testing.assert_array_equal(r.exit_index, [0, 1, 2])
    np.testing.assert_array_equal(r.prediction, [0, 2, 1])
    assert r.accuracy == 1.0 and r.avg_flops == 2.0


def test_pick_under_budget_keeps_equal_cost_and_prefers_the_cheaper_tie():
    from eexit_vision.policies.offline import Candidate, OfflineResult, pick_under_budget
    res = lambda acc, flops: OfflineResult(acc, flops, np.zeros(2), np.zeros(1), np.zeros(1))
    cands = [Candidate(0.0, None, res(0.8, 2.0)), Candidate(1.0, None, res(0.8, 1.5)),
             Candidate(2.0, None, res(0.9, 2.5))]
    assert pick_under_budget(cands, 2.5, np.array([1.0, 3.0])).param == 2.0  # cost == budget fits
    assert pick_under_budget(cands, 2.4, np.array([1.0, 3.0])).param == 1.0  # tie: the cheaper
    assert pick_under_budget(cands[2:], 2.4, np.array([1.0, 3.0])) is None


def test_fit_to_budget_names_the_budget_nothing_meets_and_returns_the_parameter():
    from dpv.errors import DPVError
    from dpv.exits import FixedExit
    from eexit_vision.policies import fit_to_budget
    val = synthetic_trace(seed=4, n=200)
    import re
    with pytest.raises(DPVError, match=re.escape(f"no setting of the policy meets a budget of {val.flops[0]:.4g}")):
        fit_to_budget(lambda k: FixedExit(int(k)), [3], val, float(val.flops[0]))
    pol, param = fit_to_budget(lambda k: FixedExit(int(k)), [0, 1, 2, 3], val, float(val.flops[1]))
    assert param == 1.0 and pol == FixedExit(1)
    with pytest.raises(DPVError, match=re.escape(f"below the cheapest exit ({val.flops[0]:.4g} FLOPs at exit 0)")):
        fit_to_budget(lambda k: FixedExit(int(k)), [0], val, float(val.flops[0]) / 2)


def test_margin_and_negative_entropy_scores():
    from eexit_vision.policies.scores import margin, neg_entropy
    p = np.array([[0.1, 0.6, 0.3], [0.25, 0.25, 0.5], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(margin(p), [0.3, 0.25, 0.0])
    np.testing.assert_allclose(neg_entropy(p), (p * np.log(p)).sum(-1))
    assert margin(np.array([0.2, 0.7, 0.1])) == pytest.approx(0.5)  # one row, any rank
    np.testing.assert_allclose(score("neg_entropy", np.log(p)), (p * np.log(p)).sum(-1))
