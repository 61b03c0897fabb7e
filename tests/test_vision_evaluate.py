import json
import subprocess
import sys

import numpy as np
import pytest

from eexit_vision.evaluate import main
from eexit_vision.studies import synthetic_trace
from eexit_vision.traces import Trace, save_trace


@pytest.fixture(scope="module")
def trace_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("traces")
    save_trace(d / "val.npz", synthetic_trace(seed=20, n=600, model_id="m1", split="val"))
    save_trace(d / "test.npz", synthetic_trace(seed=21, n=600, model_id="m1", split="test"))
    save_trace(d / "other.npz", synthetic_trace(seed=22, n=600, model_id="m2", split="test"))
    empty = synthetic_trace(seed=23, n=1, model_id="m1")
    save_trace(d / "empty.npz", Trace(empty.logits[:, :0], empty.labels[:0], empty.flops, empty.num_classes, "m1"))
    return d


def test_evaluate_writes_tables_plots_and_eero_stays_in_budget(trace_files, tmp_path):
    main(["--val", str(trace_files / "val.npz"), "--test", str(trace_files / "test.npz"),
          "--out", str(tmp_path), "--points", "5", "--no-progress"])
    for f in ("anytime.md", "anytime.csv", "budget_curves.md", "budget_curves.csv", "anytime.png",
              "budget_curves.png", "eero_budget.png", "summary.json"):
        assert (tmp_path / f).stat().st_size > 0, f
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["eero_within_budget"] and s["eero_max_relative_excess"] <= 0  # no slack
    for p in s["policies"]["EERO"]:
        assert p["test_avg_flops"] <= p["budget"]
    v = s["eero_validation_cdfs"]
    assert v["within_stated_bound"] and v["delta"] == 0.05
    assert len(s["policies"]["EERO (validation CDFs)"]) == 5
    rows = [r for r in json.loads((tmp_path / "budget_curves.json").read_text())
            if r["policy"] == "EERO (validation CDFs)"]
    assert [o["budget"] for o in v["overruns"]] == [r["budget"] for r in rows if r["test_avg_flops"] > r["budget"]]
    assert {"EERO", "MSDNet thresholds", "entropy", "T-Tamer (recall)", "ASTI look-then-leap", "patience",
            "static exit", "confidence (no-recall threshold)"} <= set(s["policies"])
    assert len(s["policies"]["EERO"]) == 5
    assert "Bayes + CP" in s["anytime"] and "logit voting" in s["anytime"]


def run_cli_error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err
    return err


def test_test_trace_from_another_model_is_refused(trace_files, tmp_path, capsys):
    err = run_cli_error(capsys, ["--val", str(trace_files / "val.npz"), "--test", str(trace_files / "other.npz"),
                                 "--out", str(tmp_path)])
    assert "another model" in err


def test_budget_below_cheapest_exit_is_refused(trace_files, tmp_path, capsys):
    err = run_cli_error(capsys, ["--val", str(trace_files / "val.npz"), "--test", str(trace_files / "test.npz"),
                                 "--out", str(tmp_path), "--budgets", "1e5", "2e6"])
    assert "below the cheapest exit" in err


def test_empty_calibration_set_is_refused(trace_files, tmp_path, capsys):
    err = run_cli_error(capsys, ["--val", str(trace_files / "val.npz"), "--test", str(trace_files / "test.npz"),
                                 "--calib", str(trace_files / "empty.npz"), "--out", str(tmp_path)])
    assert "calibration set is empty" in err


def test_cli_process_prints_one_line_and_exits_nonzero(trace_files, tmp_path):
    p = subprocess.run([sys.executable, "-m", "eexit_vision.evaluate", "--val", str(trace_files / "val.npz"),
                        "--test", str(trace_files / "other.npz"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
