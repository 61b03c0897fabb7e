import subprocess
import sys

import pytest
import torch

from dpv.checkpoint import load_checkpoint, load_policy_value, save_policy_value
from dpv.config import GameConfig, MCTSConfig, NetConfig, from_dict, load_sections, set_dotted
from dpv.errors import CheckpointError, ConfigError
from dpv.games import make_game
from dpv.nets import build_policy_value_net

SECTIONS = {"game": GameConfig, "net": NetConfig, "mcts": MCTSConfig}


def netinfo(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    return subprocess.run([sys.executable, "-m", "dpv.netinfo", "--config", str(cfg)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("text, named", [
    ("game: {name: chess}", "game.name"),
    ("game: {board_size: 8}", "game.board_size"),
    ("net: {chanels: 8}", "net.chanels"),
    ("net: {blocks: six}", "net.blocks"),
    ("net: {blocks: 6, exits: [2, 9]}", "net.exits"),
    ("net: [1, 2]", "net"),
    ("game: {komi: [1]}", "game.komi"),
])
def test_cli_bad_config_gives_one_line_naming_the_field(tmp_path, text, named):
    res = netinfo(tmp_path, text)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_missing_config_file_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "dpv.netinfo", "--config", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not found" in res.stderr and "Traceback" not in res.stderr


def test_all_shipped_configs_validate():
    for name in ["go9", "go9_paper", "tictactoe", "connect4"]:
        cfg = load_sections(f"configs/{name}.yaml", SECTIONS, strict=False)
        make_game(cfg["game"])


def test_overrides_apply_with_yaml_types():
    data = {"mcts": {"simulations": 10}}
    set_dotted(data, "mcts.simulations=200")
    set_dotted(data, "mcts.tau0=0.5")
    cfg = from_dict(MCTSConfig, data["mcts"], "mcts")
    assert cfg.simulations == 200 and cfg.tau0 == 0.5
    with pytest.raises(ConfigError, match="mcts.tau0"):
        from_dict(MCTSConfig, {"tau0": 1.5}, "mcts")
    with pytest.raises(ConfigError, match="unknown config section 'mctz'"):
        load_sections({"mctz": {}}, SECTIONS)


def test_checkpoint_roundtrip_and_board_size_mismatch(tmp_path):
    game_cfg = GameConfig(board_size=5)
    net = build_policy_value_net(NetConfig(blocks=2, channels=8, exits=(1, 2)), make_game(game_cfg))
    path = tmp_path / "ckpt" / "model.pt"
    save_policy_value(path, net, game_cfg, step=7)
    loaded, cfg = load_policy_value(path, expect_game=game_cfg)
    assert cfg == game_cfg and load_checkpoint(path)["step"] == 7
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not list(path.parent.glob("*.tmp"))  # no temp files left behind
    with pytest.raises(CheckpointError, match="board size mismatch"):
        load_policy_value(path, expect_game=GameConfig(board_size=9))


def test_corrupt_and_missing_checkpoints_name_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="bad.pt is corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    res = subprocess.run([sys.executable, "-m", "dpv.netinfo", "--checkpoint", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "corrupt" in res.stderr and "Traceback" not in res.stderr


def test_truncated_checkpoint_is_refused(tmp_path):
    game_cfg = GameConfig(board_size=5)
    net = build_policy_value_net(NetConfig(blocks=2, channels=8, exits=(1, 2)), make_game(game_cfg))
    path = tmp_path / "m.pt"
    save_policy_value(path, net, game_cfg)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy_value(path)
