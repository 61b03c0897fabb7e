"""Exit rules and the FLOPs budget at their boundaries: cases written to kill the mutants that
survived tests/test_exits.py (mutmut over dpv/exits.py and dpv/budget.py; docs/fidelity.md)."""
import warnings

import numpy as np
import pytest

from dpv.budget import Budget
from dpv.errors import ConfigError
from dpv.exits import ConfidenceThreshold, EntropyThreshold, ExitContext, Patience, entropy


def ctx_of(*exits, mask=None):
    """Context at the last of the given exits (each a (B, A) array of probabilities)."""
    logits = [np.log(np.asarray(p, dtype=np.float64)) for p in exits]
    return ExitContext(len(logits) - 1, 4, logits, mask)


def test_entropy_of_a_one_hot_distribution_is_zero_without_warnings():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log(0) must neither warn nor leak a nan
        h = entropy(p)
    np.testing.assert_allclose(h, [0.0, np.log(2)], atol=1e-15)


def test_entropy_reduces_over_the_last_axis_whatever_the_rank():
    assert entropy(np.array([0.25, 0.25, 0.5])) == pytest.approx(1.5 * np.log(2))
    h = entropy(np.full((2, 3, 4), 0.25))
    assert h.shape == (2, 3)
    np.testing.assert_allclose(h, np.log(4))


def test_confidence_threshold_stops_at_equality():
    ctx = ctx_of([[0.5, 0.5], [0.6, 0.4], [0.3, 0.7]])
    assert ConfidenceThreshold(0.5).decide(ctx).tolist() == [True, True, True]
    assert ConfidenceThreshold(0.6).decide(ctx).tolist() == [False, True, True]


def test_entropy_threshold_stops_at_equality():
    ctx = ctx_of([[0.5, 0.5], [0.9, 0.1]])
    assert EntropyThreshold(float(np.log(2))).decide(ctx).tolist() == [True, True]
    assert EntropyThreshold(0.3).decide(ctx).tolist() == [False, False]
    assert EntropyThreshold(0.33).decide(ctx).tolist() == [False, True]  # H(0.9, 0.1) = 0.325


def test_patience_returns_a_bool_mask_before_enough_exits():
    out = Patience(3).decide(ctx_of([[0.9, 0.1]], [[0.9, 0.1]]))
    assert out.dtype == bool and out.tolist() == [False]


def test_patience_needs_every_exit_in_the_window_to_agree():
    # rows: all three agree; only the first and last agree; the last two agree; only the first two
    e0 = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]]
    e1 = [[0.8, 0.2], [0.2, 0.8], [0.9, 0.1], [0.8, 0.2]]
    e2 = [[0.7, 0.3], [0.6, 0.4], [0.7, 0.3], [0.3, 0.7]]
    assert Patience(3).decide(ctx_of(e0, e1, e2)).tolist() == [True, False, False, False]
    assert Patience(2).decide(ctx_of(e0, e1, e2)).tolist() == [True, False, True, False]
    assert Patience(1).decide(ctx_of(e0, e1, e2)).tolist() == [True] * 4


def test_patience_compares_argmaxes_over_legal_moves_only():
    # the illegal move 0 has the largest logit at exit 0; over legal moves both exits say move 1
    mask = np.array([[False, True, True]])
    ctx = ctx_of([[0.6, 0.3, 0.1]], [[0.1, 0.8, 0.1]], mask=mask)
    assert Patience(2).decide(ctx).tolist() == [True]


def test_budget_must_be_positive_and_any_positive_total_is_accepted():
    for bad in (0.0, -1.0):
        with pytest.raises(ConfigError, match=f"budget must be > 0 FLOPs, got {bad}"):
            Budget(bad)
    assert Budget(0.5).total == 0.5
    assert Budget.from_n_ref(1, 100.0).total == 100.0  # n_ref = 1: one full-network evaluation
    with pytest.raises(ConfigError, match="n_ref must be > 0, got -2"):
        Budget.from_n_ref(-2, 100.0)


def test_budget_affords_a_charge_that_lands_on_the_total_within_rounding():
    b = Budget(1000.0)
    edge = 1000.0 * (1 + 1e-12)
    assert b.can_afford(edge) and not b.can_afford(edge * (1 + 1e-12))
    b.charge(400)
    assert b.remaining == 600 and b.limited
    b.charge(700)
    assert b.fraction == 1.0  # overspent: r is capped at 1 (eq. 6.5's r is a fraction)
    b.reset()
    assert b.spent == 0.0 and b.fraction == 0.0
    assert Budget().remaining == np.inf and not Budget().limited
