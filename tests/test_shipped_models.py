"""Networks shipped in models/: each has a card, still loads with today's code and answers
as it did when it shipped (so a later format change cannot break it silently), plays
through `net:NAME`; bad names and wrong boards are one line and exit 2."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dpv.checkpoint import FORMAT_VERSION, load_checkpoint
from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.play.experiments import untrained_checkpoint
from dpv.players.spec import make_player
from dpv.shipped_models import MODELS_DIR, fingerprint, resolve_network, shipped_names

SHIPPED = shipped_names()


def test_connect_four_network_is_shipped_with_a_card_for_every_network():
    assert "connect4_dpv" in SHIPPED
    readme = (MODELS_DIR / "README.md").read_text()
    for name in SHIPPED:
        assert f"## {name}" in readme, f"models/README.md has no card for {name}"
        assert (MODELS_DIR / f"{name}.pt").stat().st_size < 5 * 2 ** 20  # under 5 MB


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_network_loads_and_answers_as_when_it_shipped(name):
    path = MODELS_DIR / f"{name}.pt"
    shipped = json.loads((MODELS_DIR / f"{name}.json").read_text())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shipped["sha256"], \
        f"{path} was replaced without its fingerprint: python -m dpv.shipped_models fingerprint {path}"
    assert load_checkpoint(path)["format_version"] <= FORMAT_VERSION
    now = fingerprint(path)  # today's loader and network code
    assert len(now["initial_position"]) == len(shipped["initial_position"])
    for k, (a, b) in enumerate(zip(now["initial_position"], shipped["initial_position"])):
        assert a["value"] == pytest.approx(b["value"], abs=1e-5), f"exit {k} value"
        np.testing.assert_allclose(a["policy_logits"], b["policy_logits"], atol=1e-5,
                                   err_msg=f"exit {k} policy")


@pytest.mark.parametrize("name", SHIPPED)
def test_short_name_plays_a_legal_move(name):
    game_cfg = GameConfig(**{k: v for k, v in json.loads((MODELS_DIR / f"{name}.json").read_text())["game"].items()
                             if k in GameConfig.__dataclass_fields__})
    player = make_player(f"net:{name},sims=8", game_cfg)
    assert player.name == f"net({name},fixed)"
    state = make_game(game_cfg).new_state()
    assert state.is_legal(player.select_move(state))


def test_paths_stay_paths_and_unknown_names_list_the_shipped_ones(tmp_path):
    assert resolve_network("runs/x/best.pt") == "runs/x/best.pt"
    assert resolve_network("connect4_dpv") == str(MODELS_DIR / "connect4_dpv.pt")
    with pytest.raises(DPVError, match="no shipped network named 'nonexistent_name'.*connect4_dpv"):
        resolve_network("nonexistent_name")


def _cli(module, *args, env=None, stdin=""):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          input=stdin, timeout=300, env={**os.environ, **(env or {})})


def test_arena_with_an_unknown_short_name_is_one_line_exit_2():
    r = _cli("dpv.arena", "--a", "net:nonexistent_name", "--b", "random", "--games", "2",
             "--config", "configs/connect4_dpv.yaml", "--no-progress")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "no shipped network named 'nonexistent_name'" in err[0]


@pytest.fixture(scope="module")
def go5_models(tmp_path_factory):
    """A models folder of our own (DPV_MODELS) holding a 5x5 Go network named go5."""
    d = tmp_path_factory.mktemp("models")
    (d / "go5.yaml").write_text("game: {name: go, board_size: 5}\n"
                                "net: {blocks: 2, channels: 8, exits: [1, 2], value_hidden: 8}\n")
    untrained_checkpoint(d / "go5.yaml", d / "go5.pt")
    return d


def test_shipped_network_on_the_wrong_board_is_one_line_exit_2(go5_models, tmp_path):
    env = {"DPV_MODELS": str(go5_models)}
    r = _cli("dpv.arena", "--a", "net:go5", "--b", "random", "--board", "7", "--games", "2",
             "--out", str(tmp_path / "o"), "--no-progress", env=env)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "board size mismatch" in err[0] and "5x5" in err[0]
    assert not (tmp_path / "o" / "summary.json").exists()
    r = _cli("dpv.arena", "--a", "net:connect4_dpv", "--b", "random", "--board", "9", "--games", "2",
             "--no-progress")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "is for connect_four, not go" in err[0]


def test_gtp_serves_a_shipped_name(go5_models):
    r = _cli("dpv.gtp", "--player", "net:go5,sims=4", "--board", "5", env={"DPV_MODELS": str(go5_models)},
             stdin="name\ngenmove b\nquit\n")
    assert r.returncode == 0, r.stderr
    replies = [line for line in r.stdout.splitlines() if line.startswith("=")]
    assert replies[0] == "= DPV" and len(replies[1]) > 2
