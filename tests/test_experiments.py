"""Tables 6.2 and 6.3 end to end on the CPU-default network (untrained), with few games."""
import json

import pytest

from dpv.play.experiments import main, untrained_checkpoint


@pytest.fixture(scope="module")
def go9_checkpoint(tmp_path_factory):
    return untrained_checkpoint("configs/go9.yaml", tmp_path_factory.mktemp("ck") / "go9.pt")


def test_table6_2_then_table6_3_write_their_tables(go9_checkpoint, tmp_path):
    common = ["--checkpoint", str(go9_checkpoint), "--n-ref", "2", "--games", "2", "--workers", "1",
              "--max-moves", "12", "--no-progress"]
    assert main(["table6_2", *common, "--out", str(tmp_path / "t62")]) == 0
    t62 = json.loads((tmp_path / "t62" / "table6_2.json").read_text())
    md = (tmp_path / "t62" / "table6_2.md").read_text()
    # go9.yaml has 3 exits: exits 0 and 1 each play exit 2 in both settings
    assert "| Simulation | Setting | Exit 0 | Exit 1 |" in md
    assert "| 2 | Same number of simulations |" in md and "| 2 | Same computation budgets |" in md
    rows = {r["setting"]: r for r in t62["rows"]}
    same_sims, same_budget = rows["same_simulations"], rows["same_budget"]
    assert same_sims["exits"]["0"]["games"] == 2 and same_sims["exits"]["0"]["a_simulations_per_move"] == 2
    # under the same FLOPs budget the shallow exit buys more simulations than the deepest
    assert same_budget["exits"]["0"]["a_simulations_per_move"] > 2
    assert t62["best_exit_same_budget"]["2"] in (0, 1)
    assert (tmp_path / "t62" / "n2_same_budget_exit0" / "game_0001.sgf").exists()

    assert main(["table6_3", *common, "--out", str(tmp_path / "t63"),
                 "--from-table6_2", str(tmp_path / "t62" / "table6_2.json")]) == 0
    t63 = json.loads((tmp_path / "t63" / "table6_3.json").read_text())
    row = t63["rows"][0]
    assert row["best_exit"] == t62["best_exit_same_budget"]["2"]
    assert "mode=dynamic," in row["dynamic"]["a"] and "mode=dynamic_static" in row["dynamic_static"]["a"]
    md = (tmp_path / "t63" / "table6_3.md").read_text()
    assert "| Simulation Count | Best exit | Dynamic | Dynamic (w/o dynamic threshold) |" in md


def test_table6_3_without_a_best_exit_or_with_a_bad_checkpoint_is_one_line(go9_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["table6_3", "--checkpoint", str(go9_checkpoint), "--games", "2"])
    assert e.value.code == 2 and "needs the best single exit" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(SystemExit) as e:
        main(["table6_2", "--checkpoint", str(bad), "--games", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: checkpoint")
