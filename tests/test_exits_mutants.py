"""Exit rules and the FLOPs budget at their boundaries: cases written to kill the mutants that
survived tests/test_exits.py (mutmut over dpv/exits.py and dpv/budget.py; docs/fidelity.md)."""
import warnings

import numpy as np
import pytest

from dpv.budget import Budget
from dpv.errors import ConfigError
from dpv.exits import ConfidenceThreshold, EntropyThreshold, ExitContext, Patience, entropy, masked_softmax


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


def test_budget_repr_names_total_and_spent():
    b = Budget(10.0)
    b.charge(2.5)
    assert repr(b) == "Budget(total=10.0, spent=2.5)"


# ---- masked softmax and the offline runner

def test_masked_softmax_is_stable_per_row_and_float64():
    from dpv.exits import masked_softmax
    p = masked_softmax(np.array([[1000.0, 999.0], [0.0, 1.0]], dtype=np.float32))
    assert p.dtype == np.float64 and np.isfinite(p).all()
    np.testing.assert_allclose(p, [[1 / (1 + np.exp(-1)), 1 / (1 + np.e)], [1 / (1 + np.e), 1 / (1 + np.exp(-1))]])


class RecallProbe:
    """Never stops on its own; answers with exit 0 and records every context it is shown."""

    def __init__(self):
        self.decided, self.selected = [], []

    def decide(self, ctx):
        self.decided.append(ctx)
        return np.zeros(ctx.batch, dtype=bool)

    def select(self, ctx):
        self.selected.append(ctx)
        return np.zeros(ctx.batch, dtype=np.int32)


def test_run_offline_asks_a_recall_policy_at_the_last_exit_with_the_rows_full_context():
    from dpv.exits import run_offline
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5))
    mask = rng.random((4, 5)) > 0.3
    mask[:, 0] = True
    r = np.array([0.1, 0.2, 0.3, 0.4])
    flops = np.array([1.0, 2.0, 3.0])
    probe = RecallProbe()
    dec = run_offline(probe, logits, mask, r, flops)
    assert dec.exit_index.tolist() == [2, 2, 2, 2] and dec.answer_exit.tolist() == [0, 0, 0, 0]
    assert dec.answer_exit.dtype == np.int64 and dec.exit_index.dtype == np.int64
    assert [c.exit_index for c in probe.decided] == [0, 1]  # the last exit is not asked to stop
    (sel,) = probe.selected
    assert sel.exit_index == 2 and sel.num_exits == 3 and len(sel.logits) == 3
    np.testing.assert_array_equal(sel.legal_mask, mask)
    np.testing.assert_array_equal(sel.budget_fraction, r)
    np.testing.assert_array_equal(sel.flops, flops)
    assert all(c.flops is flops for c in probe.decided)


def test_run_offline_selects_on_the_stopped_rows_only():
    from dpv.exits import run_offline

    class StopOdd(RecallProbe):
        def decide(self, ctx):
            super().decide(ctx)
            return (np.arange(ctx.batch) % 2 == 1) if ctx.exit_index == 0 else np.zeros(ctx.batch, bool)

    logits = np.zeros((2, 4, 3))
    mask = np.array([[True, True, False], [True, False, True], [False, True, True], [True, True, True]])
    r = np.array([0.0, 0.25, 0.5, 0.75])
    probe = StopOdd()
    dec = run_offline(probe, logits, mask, r)
    assert dec.exit_index.tolist() == [1, 0, 1, 0]
    first = probe.selected[0]  # rows 1 and 3 stopped at exit 0
    np.testing.assert_array_equal(first.legal_mask, mask[[1, 3]])
    np.testing.assert_array_equal(first.budget_fraction, r[[1, 3]])


def test_run_offline_decides_on_float32_logits_like_the_online_runner():
    from dpv.exits import run_offline
    z = np.array([[np.log(0.7) + 3e-8, np.log(0.3)]])
    conf64 = masked_softmax(z).max()
    conf32 = masked_softmax(z.astype(np.float32)).max()
    assert conf64 != conf32
    tau = (conf64 + conf32) / 2
    want = run_offline(ConfidenceThreshold(tau), [z.astype(np.float32), z.astype(np.float32)]).exit_index
    np.testing.assert_array_equal(run_offline(ConfidenceThreshold(tau), [z, z]).exit_index, want)


def test_select_answer_defaults_to_the_stopping_exit_as_int64():
    from dpv.exits import select_answer
    ans = select_answer(ConfidenceThreshold(0.5), ctx_of([[0.6, 0.4], [0.5, 0.5]], [[0.6, 0.4], [0.5, 0.5]]))
    assert ans.dtype == np.int64 and ans.tolist() == [1, 1]
    assert select_answer(RecallProbe(), ctx_of([[0.6, 0.4]])).dtype == np.int64


def test_exit_mode_defaults_are_the_configs():
    from dpv.exits import DynamicThreshold, FixedExit, make_exit_policy
    assert make_exit_policy("dynamic") == DynamicThreshold(0.6, 0.3)
    assert make_exit_policy("fixed_budget", exit=2) == FixedExit(2)
