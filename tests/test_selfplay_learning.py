"""Learning checks (slow): the main job trains from scratch and the result beats fixed anchors.

    python -m pytest -m slow tests/test_selfplay_learning.py -k tic_tac_toe   # ~2-5 min
    python -m pytest -m slow tests/test_selfplay_learning.py -k connect_four  # <= 1 h + match
    python -m pytest -m slow tests/test_selfplay_learning.py -k go9           # 1 h + match

Each runs `python -m selfplay.run` exactly as a user would (embedded Ray), then plays the
run's best network (deepest exit, its search, no noise) against the anchor with colours
alternated through dpv.match.play_match.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpv.checkpoint import load_policy_value
from dpv.config import MCTSConfig
from dpv.play.match import play_match
from dpv.players.net_player import NetPlayer
from dpv.players.spec import make_player
from selfplay.config import CONFIG_DIR, load_run_config

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def train(run_dir: Path, *args: str, timeout: float) -> None:
    res = subprocess.run([sys.executable, "-m", "selfplay.run", "--run-dir", str(run_dir),
                          "--no-progress", *args], cwd=ROOT, timeout=timeout,
                         capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]


def match_best(run_dir: Path, config: Path, anchor: str, games: int, sims: int, opening: int):
    cfg = load_run_config(run_dir / "config.yaml")
    net, game_cfg = load_policy_value(run_dir / "best.pt", expect_game=cfg.game)
    mcts = MCTSConfig(**{**cfg.mcts.__dict__, "simulations": sims, "temperature_moves": 0})
    ours = NetPlayer(net, game_cfg, mcts, seed=1, name="best")
    other = make_player(anchor, game_cfg, seed=2)
    try:
        result = play_match(ours, other, game_cfg, games, opening_moves=opening, seed=3)
    finally:
        other.close()
    print(f"\n{run_dir.name}: best.pt ({sims} sims) vs {anchor}: W/L/D {result.wins}/"
          f"{result.losses}/{result.draws} score {result.score:.3f} {result.by_colour()}")
    return result


def test_tic_tac_toe_never_loses_to_mcts_1000(tmp_path):
    run = tmp_path / "ttt"
    train(run, "--config", str(CONFIG_DIR / "tictactoe.yaml"), "--max-games", "3000", timeout=1800)
    result = match_best(run, CONFIG_DIR / "tictactoe.yaml", "mcts:sims=1000", 50, sims=50, opening=0)
    assert result.games == 50 and result.losses == 0, result.by_colour()


def test_connect_four_beats_mcts_400_in_70_percent(tmp_path):
    run = tmp_path / "c4"
    train(run, "--config", str(CONFIG_DIR / "connect4.yaml"), "--hours", "1", timeout=2 * 3600)
    result = match_best(run, CONFIG_DIR / "connect4.yaml", "mcts:sims=400", 50, sims=100, opening=1)
    assert result.score >= 0.70, (result.wins, result.losses, result.draws)


def test_go9_one_hour_beats_random_in_95_percent(tmp_path):
    run = tmp_path / "go9"
    train(run, "--board", "9", "--hours", "1", timeout=2 * 3600)
    # 256 simulations at evaluation: after one hour the value head is informative but the
    # policy is still weak, so the search (not the raw prior) carries the games.
    result = match_best(run, CONFIG_DIR / "go9.yaml", "random", 40, sims=256, opening=0)
    assert result.wins >= 38, (result.wins, result.losses, result.draws)


def test_resident_memory_stays_flat_once_the_buffer_is_full(tmp_path):
    """A small buffer fills early; after that neither the driver's nor an actor's resident
    memory, nor its private part, may keep growing (TensorBoard memory scalars of the run)."""
    from selfplay.plot import load_scalars

    run = tmp_path / "mem"
    train(run, "--board", "9", "--hours", "0.3", "--set", "replay.capacity=3000",
          "--set", "train.start_games=16", "--set", "train.games_per_block=16", timeout=3600)
    s = load_scalars(run / "tb")
    steps, size = s["selfplay/buffer_size"]
    full_at = steps[size >= 3000].min()
    for tag in ("memory/driver_rss_mb", "memory/actor_rss_mb",
                "memory/driver_anon_mb", "memory/actor_anon_mb"):
        st, rss = s[tag]
        after = rss[st >= full_at]
        half = len(after) // 2
        assert half >= 3, "the run ended too soon after the buffer filled"
        assert after[half:].max() <= 1.10 * after[:half].max(), (tag, after.tolist())
