import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpv.config import GameConfig, NetConfig
from dpv.games import make_game
from dpv.nets import build_policy_value_net

PAPER = NetConfig(blocks=15, channels=128, exits=(6, 9, 12, 15))


def small_net(seed=0, game="go", size=5):
    torch.manual_seed(seed)
    g = make_game(GameConfig(name=game, board_size=size))
    net = build_policy_value_net(NetConfig(blocks=4, channels=16, exits=(1, 2, 4), value_hidden=16), g)
    # non-trivial BN statistics so eval mode is not the identity
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, *g.observation_shape))
    return net.eval(), g


def test_thesis_network_matches_table_6_1():
    g = make_game(GameConfig())
    table = build_policy_value_net(PAPER, g).flops()
    for k, want in enumerate([2.90e8, 4.33e8, 5.77e8, 7.20e8]):
        assert table.fixed(k) == pytest.approx(want, rel=0.005)


def test_analytic_flops_match_torch_flop_counter():
    net, g = small_net()
    table = net.flops()
    for k in range(net.num_exits):
        with FlopCounterMode(display=False) as counter:
            net.forward_to(net.example_input(1), k)
        assert table.fixed(k) == pytest.approx(counter.get_total_flops(), rel=1e-9)
    with FlopCounterMode(display=False) as counter:
        net(net.example_input(1))
    assert table.staged(net.num_exits - 1) == pytest.approx(counter.get_total_flops(), rel=1e-9)


def test_forward_to_equals_full_forward_at_that_exit():
    net, g = small_net()
    x = torch.randn(6, *g.observation_shape)
    with torch.no_grad():
        full = net(x)
        for k in range(net.num_exits):
            out = net.forward_to(x, k)
            torch.testing.assert_close(out.policy_logits, full[k].policy_logits)
            torch.testing.assert_close(out.value, full[k].value)


def test_forward_to_never_runs_later_stages():
    net, g = small_net()
    ran = []
    for i, stage in enumerate(net.stages):
        stage.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
    with torch.no_grad():
        net.forward_to(net.example_input(2), 0)
    assert ran == [0]


def test_staged_forward_with_row_removal_matches_full_forward_per_row():
    net, g = small_net()
    x = torch.randn(10, *g.observation_shape)
    want_exit = torch.tensor([0, 2, 1, 0, 2, 2, 1, 0, 1, 2])
    batch_sizes = []

    def stop(k, out, rows):
        batch_sizes.append(len(rows))
        return want_exit[rows] == k

    with torch.no_grad():
        res = net.staged_forward(x, stop)
        full = net(x)
    assert res.exit_index.tolist() == want_exit.tolist()
    assert batch_sizes == [10, 7]  # exited rows left the batch before stage 1
    for i in range(10):
        k = int(want_exit[i])
        torch.testing.assert_close(res.outputs.policy_logits[i], full[k].policy_logits[i])
        torch.testing.assert_close(res.outputs.value[i], full[k].value[i])


def test_stopped_rows_are_not_computed_further():
    net, g = small_net()
    seen = []
    net.stages[2].register_forward_hook(lambda m, a, o: seen.append(a[0].shape[0]))
    with torch.no_grad():
        net.staged_forward(torch.randn(5, *g.observation_shape),
                           lambda k, out, rows: torch.arange(len(rows)) < 3)
    assert seen == []  # every row stopped at exit 0 or 1: the deepest stage never ran


def test_value_in_range_and_policy_covers_actions():
    net, g = small_net(game="tic_tac_toe")
    with torch.no_grad():
        outs = net(torch.randn(4, *g.observation_shape))
    assert all(o.policy_logits.shape == (4, 9) for o in outs)
    assert all(o.value.abs().max() <= 1 for o in outs)


def test_netinfo_json_gives_table_6_1():
    out = subprocess.run([sys.executable, "-m", "dpv.netinfo", "--config", "configs/go9_paper.yaml", "--json"],
                         capture_output=True, text=True, check=True).stdout
    exits = json.loads(out)["exits"]
    assert [e["block"] for e in exits] == [6, 9, 12, 15]
    for e, want in zip(exits, [2.90e8, 4.33e8, 5.77e8, 7.20e8]):
        assert e["flops"] == pytest.approx(want, rel=0.005)
    assert exits[0]["relative"] == pytest.approx(0.403, abs=0.001)
