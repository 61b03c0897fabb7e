"""Tables 6.2 and 6.3, tuning and wall time end to end on a tiny untrained connect-four net
(3 exits), with two games per cell; the choice of Table 6.3's opponent and the wall-time
arithmetic on numbers written here."""
import json
import shutil

import pytest

from dpv.checkpoint import load_policy_value
from dpv.errors import DPVError
from dpv.play.experiments import detectable_effect, main, untrained_checkpoint
from dpv.play.single_exit import best_single_exit
from dpv.play.table_cells import CellRunner
from dpv.play.tuning import tuned_parameters
from dpv.play.walltime import same_time_budget, walltime

TINY = """game:
  name: connect_four
net:
  blocks: 3
  channels: 8
  exits: [1, 2, 3]
  value_hidden: 8
"""


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    (d / "tiny.yaml").write_text(TINY)
    return untrained_checkpoint(d / "tiny.yaml", d / "tiny.pt")


def common(ck):
    return ["--checkpoint", str(ck), "--n-ref", "2", "--games", "2", "--workers", "1",
            "--max-moves", "10", "--no-progress"]


@pytest.fixture(scope="module")
def table6_2_dir(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("t62")
    assert main(["table6_2", *common(tiny_checkpoint), "--out", str(out)]) == 0
    return out


def test_best_single_exit_is_the_deepest_when_no_shallow_exit_beats_it():
    assert best_single_exit({0: 0.40, 1: 0.48}, deepest=2) == 2
    assert best_single_exit({0: 0.40, 1: 0.55}, deepest=2) == 1
    assert best_single_exit({0: 0.50}, deepest=1) == 1  # a tie does not beat the deepest
    assert best_single_exit({0: 0.60, 1: 0.60}, deepest=2) == 0  # equal: the cheaper exit
    with pytest.raises(DPVError, match="not a shallow exit"):
        best_single_exit({2: 0.7}, deepest=2)


def test_table6_2_writes_both_settings_and_the_best_exit(table6_2_dir):
    t62 = json.loads((table6_2_dir / "table6_2.json").read_text())
    md = (table6_2_dir / "table6_2.md").read_text()
    assert "| Simulation | Setting | Exit 0 | Exit 1 |" in md
    assert "| 2 | Same number of simulations |" in md and "| 2 | Same computation budgets |" in md
    rows = {r["setting"]: r for r in t62["rows"]}
    assert rows["same_simulations"]["exits"]["0"]["a_simulations_per_move"] == 2
    # under the same FLOPs budget the shallow exit buys more simulations than the deepest
    assert rows["same_budget"]["exits"]["0"]["a_simulations_per_move"] > 2
    scores = {int(k): c["score"] for k, c in rows["same_budget"]["exits"].items()}
    assert t62["best_exit_same_budget"]["2"] == best_single_exit(scores, 2)
    assert (table6_2_dir / "n2_same_budget_exit0" / "game_0001.sgf").exists()


def test_table6_3_plays_the_deepest_exit_when_table6_2_names_it(tiny_checkpoint, tmp_path):
    t62 = tmp_path / "t62.json"
    t62.write_text(json.dumps({"best_exit_same_budget": {"2": 2}}))
    assert main(["table6_3", *common(tiny_checkpoint), "--out", str(tmp_path / "t63"),
                 "--from-table6_2", str(t62)]) == 0
    row = json.loads((tmp_path / "t63" / "table6_3.json").read_text())["rows"][0]
    assert row["best_exit"] == 2 and "mode=fixed_budget,exit=2,n_ref=2" in row["opponent"]
    net, _ = load_policy_value(tiny_checkpoint)
    deepest = net.flops().fixed(2)  # the opponent spends at most n_ref = 2 deepest evaluations
    assert deepest < row["dynamic"]["b_flops_per_move"] <= 2 * deepest
    assert "not tuned" in row["parameters"]["source"]


def test_cells_with_a_complete_summary_are_read_back_not_replayed(tiny_checkpoint, table6_2_dir, tmp_path, capsys):
    out = tmp_path / "t62"
    shutil.copytree(table6_2_dir, out)
    before = json.loads((out / "table6_2.json").read_text())
    assert main(["table6_2", *common(tiny_checkpoint), "--out", str(out)]) == 0
    again = json.loads((out / "table6_2.json").read_text())
    assert again["cells_played"] == [] and len(again["cells_resumed"]) == 4
    assert again["rows"][0]["exits"]["0"]["score"] == before["rows"][0]["exits"]["0"]["score"]
    # a cell killed half-way (one game of two in its summary) and a missing one are played again
    part = out / "n2_same_budget_exit1" / "summary.json"
    s = json.loads(part.read_text())
    s["games_played"], s["interrupted"] = 1, True
    part.write_text(json.dumps(s))
    (out / "n2_same_simulations_exit0" / "summary.json").unlink()
    assert main(["table6_2", *common(tiny_checkpoint), "--out", str(out)]) == 0
    third = json.loads((out / "table6_2.json").read_text())
    assert sorted(third["cells_played"]) == ["n2_same_budget_exit1", "n2_same_simulations_exit0"]
    assert json.loads(part.read_text())["games_played"] == 2
    # another match in a cell's folder is refused before anything is written there
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["table6_2", *common(tiny_checkpoint), "--seed", "5", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "holds another match" in err[0]
    assert json.loads((out / "n2_same_budget_exit0" / "cell.json").read_text())["seed"] == 0


def test_tune_chooses_the_best_candidate_and_table6_3_uses_it(tiny_checkpoint, table6_2_dir, tmp_path, capsys):
    t62 = str(table6_2_dir / "table6_2.json")
    assert main(["tune", *common(tiny_checkpoint), "--out", str(tmp_path / "tune"), "--from-table6_2", t62,
                 "--tau0-grid", "0.3", "0.9", "--alpha-grid", "0.2"]) == 0
    tuned = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert tuned["seed"] == 1000  # tune's own seed: not the tables' 0
    row = tuned["n_ref"]["2"]
    assert len(row["static_candidates"]) == 2 and len(row["dynamic_candidates"]) == 2
    best = max(row["dynamic_candidates"], key=lambda c: c["score"])
    assert (row["dynamic"]["tau0"], row["dynamic"]["alpha"]) == (best["tau0"], best["alpha"])
    assert "mode=dynamic_static,n_ref=2,tau0=0.9" in row["static_candidates"][1]["a"]
    assert main(["table6_3", *common(tiny_checkpoint), "--out", str(tmp_path / "t63"), "--from-table6_2", t62,
                 "--tuned", str(tmp_path / "tune" / "tune.json")]) == 0
    t63 = json.loads((tmp_path / "t63" / "table6_3.json").read_text())["rows"][0]
    assert f"tau0={row['dynamic_static']['tau0']}" in t63["dynamic_static"]["a"]
    assert f"alpha={row['dynamic']['alpha']}" in t63["dynamic"]["a"]
    md = (tmp_path / "t63" / "table6_3.md").read_text()
    assert "tuned (" in md and "Thesis dynamic" in md
    # the tuning's seed is refused for the table (its openings would be reused)
    with pytest.raises(DPVError, match="tuned with seed 1000"):
        tuned_parameters(tmp_path / "tune" / "tune.json", table_seed=1000)


def test_detectable_effect_at_the_issue_s_game_counts():
    assert detectable_effect(200) == pytest.approx(0.0990, abs=5e-4)
    assert detectable_effect(1000) == pytest.approx(0.0443, abs=5e-4)


def test_same_time_budget_converts_seconds_through_the_latency_table():
    latency = {"rows": [{"exit": 0, "flops": 1e6, "seconds_per_evaluation": 2e-3},  # 2 ns/FLOP
                        {"exit": 1, "flops": 2e6, "seconds_per_evaluation": 3e-3},
                        {"exit": 2, "flops": 4e6, "seconds_per_evaluation": 4e-3}]}  # 1 ns/FLOP
    b = same_time_budget(latency, 0.4)
    assert b["deepest_sims"] == 100  # 0.4 s / 4 ms
    assert b["dynamic_budget_flops"] == pytest.approx(2e8)  # at the slowest rate, 2 ns per FLOP
    assert b["dynamic_n_ref"] == 50


def test_walltime_measures_each_exit_and_each_mode(tiny_checkpoint, tmp_path):
    run = CellRunner(str(tiny_checkpoint), tmp_path / "wt", games=2, workers=1, seed=0,
                     opening_moves=2, max_moves=10)
    params = {"dynamic": {"tau0": 0.5, "alpha": 0.3}, "dynamic_static": {"tau0": 0.5}}
    res = walltime(run, 2, params, latency_sims=8)
    rows = res["latency"]["rows"]
    assert [r["exit"] for r in rows] == [0, 1, 2] and all(r["seconds_per_evaluation"] > 0 for r in rows)
    assert rows[0]["flops"] < rows[1]["flops"] < rows[2]["flops"]
    assert [m["mode"] for m in res["same_flops"]] == ["fixed_budget exit 0", "fixed_budget exit 1",
                                                      "dynamic_static", "dynamic"]
    assert all(m["a_seconds_per_move"] > 0 for m in res["same_flops"])
    (same_time,) = res["same_time"]
    assert "mode=fixed,exit=-1,sims=2" in same_time["b"]  # n_ref x the deepest's latency buys n_ref
    assert "| Exit | FLOPs | ms per evaluation (search)" in res["markdown"]


@pytest.mark.parametrize("argv, named", [
    (["table6_3", "--games", "2"], "needs the best single exit"),
    (["tune", "--games", "2"], "needs the best single exit"),
    (["table6_2", "--games", "3"], "--games must be even"),
    (["tune", "--games", "2", "--best-exit", "0", "--tau0-grid", "0.5", "1.5"], "--tau0-grid 1.5 is outside"),
])
def test_bad_input_is_one_line_before_any_game(tiny_checkpoint, tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and named in err[0]
    assert not (tmp_path / "o").exists()


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(SystemExit) as e:
        main(["table6_2", "--checkpoint", str(bad), "--games", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: checkpoint")
