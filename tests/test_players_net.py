"""The network player behind a spec: loads a checkpoint, searches under an exit mode."""
import numpy as np
import pytest
import torch

from dpv.checkpoint import save_policy_value
from dpv.config import GameConfig, NetConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.nets import build_policy_value_net
from dpv.players import make_player
from dpv.players.net_player import NetPlayer

GO5 = GameConfig(name="go", board_size=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=2, channels=8, exits=(1, 2), value_hidden=8),
                                 make_game(GO5))
    path = tmp_path_factory.mktemp("ckpt") / "go5.pt"
    save_policy_value(path, net, GO5)
    return str(path)


@pytest.mark.parametrize("opts", ["sims=12", "mode=fixed_budget,exit=0,n_ref=6",
                                  "mode=dynamic,n_ref=8,tau0=0.05,alpha=0.5",
                                  "mode=dynamic_static,n_ref=8,tau0=0.05"])
def test_net_player_plays_legal_moves_and_reports_its_spend(checkpoint, opts):
    player = make_player(f"net:{checkpoint},{opts}", GO5, seed=1)
    assert isinstance(player, NetPlayer)
    state = make_game(GO5).new_state()
    for _ in range(4):
        a = player.select_move(state)
        assert state.legal_mask()[a]
        info = player.last_move
        assert info.simulations > 0 and info.flops > 0 and sum(info.exit_histogram) > 0
        if "n_ref" in opts:
            assert info.budget_flops is not None and info.flops <= info.budget_flops
        player.notify_move(state, a)
        state.apply(a)
    player.reset()
    player.close()


def test_net_player_reuses_its_tree_between_moves(checkpoint):
    player = make_player(f"net:{checkpoint},sims=30", GO5)
    state = make_game(GO5).new_state()
    a = player.select_move(state)
    player.notify_move(state, a)
    state.apply(a)
    tree = player.mcts.tree
    reply = int(tree.action[tree.children(tree.root)][np.argmax(tree.visits[tree.children(tree.root)])])
    player.notify_move(state, reply)
    state.apply(reply)
    kept = player.mcts.tree.visits[player.mcts.tree.root]
    player.select_move(state)
    assert kept > 0 and player.last_result.visits.sum() >= 30 + kept - 1 - 1e-9


def test_checkpoint_for_another_board_size_is_one_clear_line(checkpoint):
    with pytest.raises(DPVError) as err:
        make_player(f"net:{checkpoint}", GameConfig(name="go", board_size=9))
    assert "board size mismatch" in str(err.value) and "\n" not in str(err.value)


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    with pytest.raises(DPVError, match="not found"):
        make_player(f"net:{tmp_path / 'nope.pt'}", GO5)
