import numpy as np
import pytest

from eexit_vision.combiners import (BayesianUpdating, ConformalBayes, LastExit, LogitVoting,
                                    anytime_predictions, conformal_outputs, standard_combiners)
from dpv.exits import masked_softmax
from eexit_vision.studies import synthetic_trace

FINCH, HEN, SHIP = 0, 1, 2


def onehot_logits(label, n_classes=3):
    z = np.full((1, n_classes), -5.0)
    z[0, label] = 5.0
    return z


def figure_5_2_likelihoods():
    # likelihood[c][true label, output]; only the columns of the observed outputs matter
    lik1 = np.full((3, 3), 1 / 3)
    lik1[:, FINCH] = [0.8, 0.2, 0.1]  # classifier 1 says "finch"
    lik2 = np.full((3, 3), 1 / 3)
    lik2[:, HEN] = [0.4, 0.5, 0.1]  # classifier 2 says "hen"
    return lik1, lik2


def test_bayes_posterior_first_exit_reproduces_thesis_figure_5_2():
    bayes = BayesianUpdating(figure_5_2_likelihoods(), first_exit="posterior")
    after1 = bayes.combine([onehot_logits(FINCH)])
    after2 = bayes.combine([onehot_logits(FINCH), onehot_logits(HEN)])
    np.testing.assert_array_equal(np.round(after1[0], 3), [0.727, 0.182, 0.091])
    np.testing.assert_array_equal(np.round(after2[0], 3), [0.744, 0.233, 0.023])
    assert after2[0].argmax() == FINCH  # the earlier, confident exit corrects the common confusion


def test_bayes_raw_first_exit_answers_with_exit_1_and_updates_from_exit_2():
    # the tables' form (Tables 5.1-5.4): exit 1 alone answers as itself, even where its
    # likelihood column would move the posterior to another label
    lik1 = np.full((3, 3), 1 / 3)
    lik1[:, HEN] = [0.9, 0.3, 0.1]  # exit 1 says "hen" mostly when the label is "finch"
    lik2 = np.full((3, 3), 1 / 3)
    z1 = np.array([[0.0, 2.0, 1.0]])  # exit 1's own answer: hen
    raw, post = BayesianUpdating((lik1, lik2)), BayesianUpdating((lik1, lik2), first_exit="posterior")
    assert raw.first_exit == "raw"  # the default
    np.testing.assert_allclose(raw.combine([z1]), masked_softmax(z1))
    assert raw.combine([z1]).argmax() == HEN and post.combine([z1]).argmax() == FINCH
    np.testing.assert_allclose(post.combine([z1])[0], [0.9, 0.3, 0.1] / np.float64(1.3))
    z2 = np.array([[0.0, 0.0, 3.0]])  # exit 2 says "ship": its flat column leaves exit 1's update
    np.testing.assert_allclose(raw.combine([z1, z2]), post.combine([z1, z2]))
    np.testing.assert_allclose(raw.combine([z1, z2])[0], [0.9, 0.3, 0.1] / np.float64(1.3))


def test_fitted_bayes_rows_keep_the_raw_exit_1_accuracy():
    val, test = synthetic_trace(seed=5, n=400), synthetic_trace(seed=6, n=400)
    for t in (val, test):  # exit 1 swaps labels 0 and 1: a confusion its likelihood undoes
        t.logits[0] = t.logits[0][:, [1, 0, 2, 3, 4]]
    for cls in (BayesianUpdating, ConformalBayes):
        raw, post = cls.fit(val), cls.fit(val, first_exit="posterior")
        np.testing.assert_array_equal(anytime_predictions(raw, test.logits)[0], test.logits[0].argmax(-1))
        a, b = anytime_predictions(raw, test.logits), anytime_predictions(post, test.logits)
        np.testing.assert_array_equal(a[1:], b[1:])  # the two differ at exit 1 only
        assert (b[0] != a[0]).any()  # on this trace the posterior does move some exit-1 answers


def test_bayes_refuses_an_unknown_first_exit():
    from dpv.errors import DPVError
    with pytest.raises(DPVError, match="first_exit must be one of raw, posterior, got 'prior'"):
        BayesianUpdating(figure_5_2_likelihoods(), first_exit="prior")


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


# ---- boundaries and exact values (written against the mutants that survived the tests above)

def test_softmax_voting_sums_probabilities_not_logits():
    a = np.array([[4.0, 0.0, 0.0]])  # very sure of class 0
    b = np.array([[0.0, 2.5, 2.5]])  # split between 1 and 2
    sv = LogitVoting(softmax=True)
    np.testing.assert_allclose(sv.combine([a, b]), masked_softmax(a) + masked_softmax(b))
    assert sv.combine([a, b]).argmax() == 0 and LogitVoting().combine([a, b]).argmax() == 0
    # two mild votes for 0 against one loud vote for 1: logits sum to (4, 5, 0), probabilities
    # to about (1.58, 1.20, 0.22), since a probability vote counts at most 1
    mild, loud = np.array([[2.0, 0.0, 0.0]]), np.array([[0.0, 5.0, 0.0]])
    assert LogitVoting().combine([mild, mild, loud]).argmax() == 1
    assert sv.combine([mild, mild, loud]).argmax() == 0


def test_standard_combiners_are_the_thesis_rows_by_name():
    names = [c.name for c in standard_combiners(synthetic_trace(seed=0, n=100))]
    assert names == ["last exit", "logit voting", "acc-weighted voting", "flops-weighted voting",
                     "softmax voting", "Bayes", "Bayes + CP"]
    softmax = standard_combiners(synthetic_trace(seed=0, n=100))[4]
    assert softmax.softmax is True


def test_smoothed_likelihood_is_counts_plus_one_over_row_total():
    val = synthetic_trace(seed=1, n=300)
    k, c = 1, val.num_classes
    pred = val.logits[k].argmax(-1)
    bayes = BayesianUpdating.fit(val)  # smoothing 1 by default
    for label in range(c):
        counts = np.bincount(pred[val.labels == label], minlength=c)
        np.testing.assert_allclose(bayes.likelihood[k][label], (counts + 1.0) / (counts.sum() + c))


def test_conformal_smoothing_is_spread_over_the_bins():
    val = synthetic_trace(seed=2, n=300)
    cp = ConformalBayes.fit(val, smoothing=1.0)
    outs = conformal_outputs(val.logits[0], (0.8, 0.9))
    c, nb = val.num_classes, 3
    for label in range(c):
        counts = np.bincount(outs[val.labels == label], minlength=c * nb)
        np.testing.assert_allclose(cp.likelihood[0][label], (counts + 1.0 / nb) / (counts.sum() + c))


def test_conformal_bayes_keeps_its_own_bin_edges():
    val = synthetic_trace(seed=2, n=300)
    cp = ConformalBayes.fit(val, bin_edges=(0.5,))
    assert cp.bin_edges == (0.5,) and cp.likelihood[0].shape == (val.num_classes, 2 * val.num_classes)
    # a max softmax exactly on an edge belongs to the bin above it
    np.testing.assert_array_equal(conformal_outputs(np.array([[0.0, 0.0]]), (0.5,)), [0 * 2 + 1])


def test_bayes_posterior_rows_each_sum_to_one():
    val, test = synthetic_trace(seed=3, n=300), synthetic_trace(seed=4, n=50)
    for comb in (BayesianUpdating.fit(val), ConformalBayes.fit(val)):
        post = comb.combine(list(test.logits))
        np.testing.assert_allclose(post.sum(axis=1), 1.0)


def test_combiner_errors_name_the_counts():
    from dpv.errors import DPVError
    with pytest.raises(DPVError, match="logit voting: 1 weights for 2 exits"):
        LogitVoting((1.0,)).combine([np.zeros((1, 3)), np.zeros((1, 3))])
    with pytest.raises(DPVError, match="Bayes: fitted for 2 exits, got 3"):
        BayesianUpdating(figure_5_2_likelihoods()).combine([onehot_logits(FINCH)] * 3)
