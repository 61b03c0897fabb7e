"""Vision classifiers on dpv's multi-exit protocol: exits, FLOPs, shared ASTI head."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpv.nets.multi_exit import MultiExitNet
from eexit_vision.config import ModelConfig
from eexit_vision.models import ASTIResNet, DigitsCNN, ExitResNet, build_model

MODELS = [
    (ModelConfig(name="digits_cnn", width=8), (1, 8, 8), 10),
    (ModelConfig(name="resnet", width=4, blocks=6, exits=(1, 2, 4, 6)), (3, 32, 32), 100),
    (ModelConfig(name="asti_resnet", width=8, blocks=5), (1, 8, 8), 10),
]


def _torch_flops(fn):
    with FlopCounterMode(display=False) as c:
        fn()
    return c.get_total_flops()


@pytest.mark.parametrize("cfg,shape,classes", MODELS, ids=[m[0].name for m in MODELS])
def test_models_are_multi_exit_nets_with_flops_matching_torch_counter(cfg, shape, classes):
    torch.manual_seed(0)
    net = build_model(cfg, shape, classes).eval()
    assert isinstance(net, MultiExitNet)
    table = net.flops()
    x = net.example_input(1)
    with torch.no_grad():
        for k in range(net.num_exits):
            assert table.fixed(k) == pytest.approx(_torch_flops(lambda: net.forward_to(x, k)), rel=1e-9)
    staged = table.staged_all()
    assert (staged[1:] > staged[:-1]).all()


@pytest.mark.parametrize("cfg,shape,classes", MODELS, ids=[m[0].name for m in MODELS])
def test_forward_to_and_staged_forward_agree_with_full_forward(cfg, shape, classes):
    torch.manual_seed(0)
    net = build_model(cfg, shape, classes, extra_outputs=1).eval()
    x = torch.randn(6, *shape)
    with torch.no_grad():
        full = net(x)
        assert len(full) == net.num_exits and full[0].shape == (6, classes + 1)
        for k in range(net.num_exits):
            assert torch.allclose(net.forward_to(x, k), full[k], atol=1e-5)
        res = net.staged_forward(x, lambda k, out, rows: rows % 2 == 0)  # even rows stop at exit 0
    for i in range(6):
        k = int(res.exit_index[i])
        assert k == (0 if i % 2 == 0 else net.num_exits - 1)
        assert torch.allclose(res.outputs[i], full[k][i], atol=1e-5)
    assert net.class_logits(full[0]).shape == (6, classes)


def test_digits_cnn_has_four_exits_and_resnet_default_exits_end_each_group():
    assert DigitsCNN((1, 8, 8), 10).num_exits == 4
    net = ExitResNet((3, 32, 32), 10, width=4, blocks=9)
    assert net.exit_blocks == (3, 6, 9)
    assert net.num_exits == 3


def test_asti_exits_share_one_head_and_report_residual_norms():
    torch.manual_seed(0)
    net = ASTIResNet((1, 8, 8), 10, width=8, blocks=4).eval()
    assert all(h is net.heads[0] for h in net.heads)
    head_params = sum(p.numel() for p in net.heads[0].parameters())
    assert sum(p.numel() for p in net.heads.parameters()) == head_params
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        outs, sq = net.forward_residuals(x)
        full = net(x)
        h = net.stem(x)
        r = net.stages[0].f(h)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(outs, full))
    assert torch.allclose(sq[0], r.flatten(1).pow(2).sum(1))
