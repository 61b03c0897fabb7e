import numpy as np
import pytest

from eexit_vision.combiners import (BayesianUpdating, ConformalBayes, LastExit, LogitVoting,
                                    anytime_predictions, conformal_outputs, standard_combiners)
from eexit_vision.studies import synthetic_trace

FINCH, HEN, SHIP = 0, 1, 2


def onehot_logits(label, n_classes=3):
    z = np.full((1, n_classes), -5.0)
    z[0, label] = 5.0
    return z


def test_bayes_reproduces_thesis_figure_5_2():
    # likelihood[c][true label, output]; only the columns of the observed outputs matter
    lik1 = np.full((3, 3), 1 / 3)
    lik1[:, FINCH] = [0.8, 0.2, 0.1]  # classifier 1 says "finch"
    lik2 = np.full((3, 3), 1 / 3)
    lik2[:, HEN] = [0.4, 0.5, 0.1]  # classifier 2 says "hen"
    bayes = BayesianUpdating((lik1, lik2))
    after1 = bayes.combine([onehot_logits(FINCH)])
    after2 = bayes.combine([onehot_logits(FINCH), onehot_logits(HEN)])
    np.testing.assert_array_equal(np.round(after1[0], 3), [0.727, 0.182, 0.091])
    np.testing.assert_array_equal(np.round(after2[0], 3), [0.744, 0.233, 0.023])
    assert after2[0].argmax() == FINCH  # the earlier, confident exit corrects the common confusion


def test_logit_voting_sums_weighted_logits():
    a = np.array([[2.0, 0.0, 1.0]])
    b = np.array([[0.0, 1.5, 0.0]])
    np.testing.assert_allclose(LogitVoting().combine([a, b]), [[2.0, 1.5, 1.0]])
    np.testing.assert_allclose(LogitVoting((1.0, 2.0)).combine([a, b]), [[2.0, 3.0, 1.0]])
    assert LogitVoting((1.0, 2.0)).combine([a, b]).argmax() == 1
    assert LastExit().combine([a, b]).argmax() == 1


def test_weights_by_accuracy_and_flops_come_from_validation():
    val = synthetic_trace(seed=0, n=400)
    acc = (val.logits.argmax(-1) == val.labels).mean(axis=1)
    np.testing.assert_allclose(LogitVoting.by_accuracy(val).weights, acc)
    np.testing.assert_allclose(LogitVoting.by_flops(val).weights, val.flops / val.flops[-1])


def test_bayes_likelihood_rows_are_confusion_rows():
    val = synthetic_trace(seed=1, n=300)
    bayes = BayesianUpdating.fit(val, smoothing=0.0)
    k = 2
    pred = val.logits[k].argmax(-1)
    for label in range(val.num_classes):
        rows = val.labels == label
        expected = np.bincount(pred[rows], minlength=val.num_classes) / rows.sum()
        np.testing.assert_allclose(bayes.likelihood[k][label], expected)


def test_conformal_bins_split_outputs_by_confidence():
    # max softmax 0.95 (> 90%), 0.85 (80-90%), 0.5 (< 80%), all predicting class 1
    probs = np.array([[0.025, 0.95, 0.025], [0.075, 0.85, 0.075], [0.25, 0.5, 0.25]])
    out = conformal_outputs(np.log(probs), (0.8, 0.9))
    np.testing.assert_array_equal(out, [1 * 3 + 2, 1 * 3 + 1, 1 * 3 + 0])
    val = synthetic_trace(seed=2, n=300)
    cp = ConformalBayes.fit(val)
    assert cp.likelihood[0].shape == (val.num_classes, val.num_classes * 3)
    np.testing.assert_allclose(cp.likelihood[0].sum(axis=1), 1.0)


def test_combiners_beat_chance_and_first_exit_equals_last_exit_combiner():
    val, test = synthetic_trace(seed=3, n=600), synthetic_trace(seed=4, n=600)
    for comb in standard_combiners(val):
        preds = anytime_predictions(comb, test.logits)
        assert preds.shape == (test.num_exits, test.size)
        assert (preds[-1] == test.labels).mean() > 0.5, comb.name
    lv = anytime_predictions(LogitVoting(), test.logits)
    np.testing.assert_array_equal(lv[0], test.logits[0].argmax(-1))


def test_voting_refuses_more_exits_than_weights():
    from dpv.errors import DPVError
    with pytest.raises(DPVError):
        LogitVoting((1.0,)).combine([np.zeros((1, 3)), np.zeros((1, 3))])
