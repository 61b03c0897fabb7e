"""Arena matches with real opponents: GNU Go, dpv.gtp engines over GTP, random players;
bad input and interruption."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dpv.play.arena import MatchPlan, run_match
from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.play.experiments import untrained_checkpoint
from dpv.play.sgf import read_sgf, replay

GNUGO = "/usr/games/gnugo"
GNUGO_CMD = f"{GNUGO} --mode gtp --level 1 --chinese-rules --capture-all-dead"
needs_gnugo = pytest.mark.skipif(not os.path.exists(GNUGO),
                                 reason="GNU Go not installed (apt-get install gnugo; CI installs it)")
GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=324)
DPV_GTP = f"{sys.executable} -m dpv.gtp --player random"


def arena_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dpv.arena", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout)


@needs_gnugo
def test_random_vs_gnugo_in_parallel_with_sgf_gnugo_loads_and_no_score_disagreement(tmp_path):
    plan = MatchPlan("random", f'gtp:"{GNUGO_CMD}"', GO9, games=4, seed=1)
    run = run_match(plan, tmp_path, workers=2, progress=False)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["games_played"] == 4 and not s["interrupted"]
    assert s["b_result"]["wins"] == 4  # GNU Go beats uniform random play
    assert s["a_result"]["as_black"]["losses"] == 2 and s["a_result"]["as_white"]["losses"] == 2
    assert s["score_check"]["games_with_engine_score"] == 4
    assert s["score_check"]["winner_disagreements"] == 0
    for rec in run.records:
        path = tmp_path / f"game_{rec.index + 1:04d}.sgf"
        g = read_sgf(path)
        assert replay(g, GO9).history() == rec.moves and g.result == rec.result
        assert g.comments[1] == "random opening move"
        out = subprocess.run([GNUGO, "--mode", "gtp", "--chinese-rules"], capture_output=True,
                             text=True, input=f"loadsgf {path}\nfinal_score\nquit\n", timeout=60)
        loaded, score = out.stdout.split("\n\n")[:2]
        assert loaded in ("= black", "= white")
        if rec.reason == "score":
            assert score == f"= {rec.result}"


def test_two_dpv_gtp_engines_play_each_other_over_gtp(tmp_path):
    a = f'gtp:"{DPV_GTP} --seed 1",name=engine-a'
    b = f'gtp:"{DPV_GTP} --seed 2",name=engine-b'
    run = run_match(MatchPlan(a, b, GameConfig(board_size=5, komi=0.5, max_game_length=60), games=2),
                    tmp_path, progress=False)
    assert [r.reason for r in run.records if r.reason not in ("score", "max_length", "superko")] == []
    assert {r.black for r in run.records} == {"engine-a", "engine-b"}
    for r in run.records:
        assert len(r.moves) >= 2 and set(r.engine_scores) == {"engine-a", "engine-b"}
        assert r.score_disagreements == 0  # both engines score by the same rules as the arena


def test_engine_dying_mid_game_is_a_forfeit_and_the_match_goes_on(tmp_path):
    # a real engine behind a pipe that closes after 25 commands, i.e. in the middle of game 1
    dying = f"gtp:\"sh -c 'sed -u 25q | {DPV_GTP}'\",name=fragile"  # sed -u: unbuffered
    run = run_match(MatchPlan("random", dying, GO9, games=3, opening_moves=0), tmp_path, progress=False)
    s = run.summary().to_dict()
    assert s["games_played"] == 3 and not run.stopped_by
    assert len(s["forfeits"]) == 3 and s["a_result"]["wins"] == 3
    assert all("fragile: engine exited" in f["detail"] for f in s["forfeits"])
    assert (tmp_path / "game_0003.sgf").exists()


def test_fixed_colours_with_black_and_white(tmp_path):
    proc = arena_cli("--black", "random:name=B", "--white", "random:name=W", "--games", "3",
                     "--board", "5", "--workers", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert [g["black"] for g in s["games"]] == ["B", "B", "B"]
    assert "Wilson 95%" in proc.stdout and "Elo diff" in proc.stdout


def _one_line_error(proc, text):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], proc.stderr


def test_missing_engine_binary_is_one_line(tmp_path):
    proc = arena_cli("--a", "random", "--b", 'gtp:"/nonexistent/gnugo --mode gtp"', "--games", "2",
                     "--out", str(tmp_path))
    _one_line_error(proc, "GTP engine not found: '/nonexistent/gnugo'")


def test_unreadable_checkpoint_and_board_size_mismatch_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    _one_line_error(arena_cli("--a", "random", "--b", f"net:{bad}", "--games", "2"), "corrupt")
    cfg7 = tmp_path / "go7.yaml"
    cfg7.write_text("game: {name: go, board_size: 7}\nnet: {blocks: 2, channels: 8, exits: [1, 2]}\n")
    ck7 = untrained_checkpoint(cfg7, tmp_path / "go7.pt")
    _one_line_error(arena_cli("--a", "random", "--b", f"net:{ck7}", "--board", "9", "--games", "2"),
                    "board size mismatch")
    # a GTP engine serving that 7x7 net refuses the arena's 9x9 board
    gtp7 = f'gtp:"{sys.executable} -m dpv.gtp --checkpoint {ck7}"'
    _one_line_error(arena_cli("--a", "random", "--b", gtp7, "--board", "9", "--games", "2"),
                    "board size mismatch")


def test_bad_arguments_are_one_line():
    _one_line_error(arena_cli("--a", "random", "--games", "2"), "--a SPEC --b SPEC")
    _one_line_error(arena_cli("--a", "random", "--b", "alien", "--games", "2"), "unknown kind 'alien'")
    _one_line_error(arena_cli("--a", "random", "--b", "random", "--board", "8"), "board size")


def test_ctrl_c_keeps_finished_games_and_writes_the_summary(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "dpv.arena", "--no-progress", "--a", "random",
                             "--b", "random", "--games", "2000", "--workers", "2", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # games finish in any order (two workers): wait for any two
    while len(list(tmp_path.glob("game_*.sgf"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = json.loads((tmp_path / "summary.json").read_text())
    sgfs = sorted(p.name for p in tmp_path.glob("game_*.sgf"))
    assert s["interrupted"] and 2 <= s["games_played"] < 2000
    assert len(sgfs) == s["games_played"] == len(s["games"])
    assert "(interrupted)" in out


def test_parallel_workers_never_lose_a_finished_game():
    # Short games finish faster than a worker's queue feeder flushes: the results a worker put
    # before it exits must still reach the parent (was: "all arena workers exited").
    ttt = GameConfig(name="tic_tac_toe", board_size=3, komi=0.0, max_game_length=9)
    for seed in range(5):
        run = run_match(MatchPlan("random", "mcts:sims=50", ttt, games=4, seed=seed), None,
                        workers=2, progress=False)
        assert not run.stopped_by and not run.interrupted
        assert sorted(r.index for r in run.records) == [0, 1, 2, 3]


def test_report_names_the_game_not_a_go_board():
    ttt = GameConfig(name="tic_tac_toe", board_size=3, komi=0.0, max_game_length=9)
    text = run_match(MatchPlan("random", "random", ttt, games=2), None, progress=False).summary().report()
    assert text.splitlines()[0] == "2/2 games, tic-tac-toe"


def test_summary_json_keeps_its_keys(tmp_path):
    """Users and scripts read summary.json: the typed summary writes the same keys as ever."""
    go5 = GameConfig(board_size=5, komi=0.5, max_game_length=60)
    run = run_match(MatchPlan("random", "random:name=r2", go5, games=2, seed=3), tmp_path, progress=False)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s == json.loads(run.summary().to_json())
    assert list(s) == ["a", "b", "a_name", "b_name", "colours", "game", "board_size", "komi",
                       "games_planned", "games_played", "interrupted", "stopped_by", "seed",
                       "opening_moves", "a_result", "b_result", "avg_game_length", "per_player",
                       "end_reasons", "forfeits", "score_check", "games"]
    assert list(s["a_result"]) == ["wins", "losses", "draws", "games", "score", "wilson95", "elo",
                                   "elo95", "as_black", "as_white"]
    assert list(s["b_result"]) == ["wins", "losses", "draws", "as_black", "as_white"]
    assert list(s["a_result"]["as_black"]) == ["wins", "losses", "draws"]
    assert list(s["per_player"]) == ["a", "b"]
    assert list(s["per_player"]["b"]) == ["name", "spec", "moves", "seconds_per_move",
                                          "flops_per_move", "simulations_per_move"]
    assert list(s["score_check"]) == ["games_with_engine_score", "winner_disagreements",
                                      "exact_margin_agreements"]
    assert [list(g) for g in s["games"]] == [["game", "black", "white", "result", "reason", "moves", "sgf"]] * 2
    # and the numbers add up from both sides
    a, b = s["a_result"], s["b_result"]
    assert (a["wins"], a["losses"], a["draws"]) == (b["losses"], b["wins"], b["draws"])
    assert a["as_black"]["wins"] == b["as_white"]["losses"] and a["games"] == 2
    assert s["per_player"]["b"]["name"] == "r2" and s["games"][1]["black"] == "r2"
