import numpy as np
import pytest

from eexit_vision.studies import (BayesSetting, bayes_curve, dirichlet_confusions, main, run_bayes_study,
                                  sample_outputs)


def test_dirichlet_confusions_put_the_most_mass_on_the_true_label():
    p = dirichlet_confusions(np.random.default_rng(0), 3, 50, accuracy=0.5)
    assert p.shape == (3, 50, 50)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert (p.argmax(-1) == np.arange(50)).all()
    assert 0.4 < np.diagonal(p, axis1=1, axis2=2).mean() < 0.65


def test_oracle_bayes_accuracy_grows_with_exits_and_beats_one_exit():
    rng = np.random.default_rng(1)
    true = dirichlet_confusions(rng, 5, 20, accuracy=0.4)
    labels = rng.integers(20, size=3000)
    outputs = sample_outputs(rng, true, labels)
    acc, mass = bayes_curve(true, outputs, labels)
    assert acc[0] == pytest.approx((outputs[0] == labels).mean(), abs=0.03)
    assert acc[-1] > acc[0] + 0.2 and np.median(mass[-1]) > np.median(mass[0])


def test_bayes_study_tables_and_plots(tmp_path):
    settings = [BayesSetting("5.5", "m=20", 30, 20, 0.5), BayesSetting("5.5", "m=400", 30, 400, 0.5),
                BayesSetting("5.7", "acc=0.5", 30, 100, 0.5)]
    rows = run_bayes_study(tmp_path, num_exits=5, trials=1500, settings=settings)
    last = {(r["setting"], r["likelihood"]): r["accuracy"] for r in rows if r["exits"] == 5}
    assert last[("m=20", "oracle")] >= last[("m=20", "estimated")]
    assert last[("m=400", "estimated")] > last[("m=20", "estimated")]  # more samples, better likelihoods
    for f in ("bayes_study.md", "bayes_study.csv", "bayes_fig5_5.png", "bayes_fig5_7.png", "bayes_vs_quality.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_studies_cli_rejects_bad_trials(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bayes", "--out", str(tmp_path), "--trials", "0"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error: --trials")
