"""Thesis ch. 4 losses and the ASTI objective: gradients and values against hand formulas."""

import pytest
import torch

from dpv.errors import ConfigError
from eexit_vision.config import LossConfig, load_vision_config
from eexit_vision.losses import damping_loss, dynamic_weights, make_loss


def _logits(b=5, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n + 1, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("lam", [0.0, 0.075, 0.5])
def test_damping_gradient_matches_thesis_propositions(lam):
    z = _logits().requires_grad_()
    y = torch.tensor([0, 1, 2, 3, 1])
    b, n1 = z.shape
    (damping_loss(z, y, lam) * b).backward()  # x b: per-sample gradients, not batch means
    f = torch.softmax(z.detach(), -1)
    rows = torch.arange(b)
    # Proposition 1: correct-label logit gets (1 + lambda) F[y] - 1
    assert torch.allclose(z.grad[rows, y], (1 + lam) * f[rows, y] - 1)
    # Proposition 2: the damping logit (N+1) gets (1 + lambda) F[N+1] - lambda
    assert torch.allclose(z.grad[:, -1], (1 + lam) * f[:, -1] - lam)
    # other class logits: F[i] from CE plus lambda F[i] from the damping term
    other = torch.ones_like(f, dtype=torch.bool)
    other[rows, y] = False
    other[:, -1] = False
    assert torch.allclose(z.grad[other], (1 + lam) * f[other])


def test_correct_label_gradient_turns_positive_at_one_over_one_plus_lambda():
    lam = 0.25
    # two classes + damping neuron; choose logits so F[y] = 1 / (1 + lambda) exactly
    target = 1 / (1 + lam)
    rest = (1 - target) / 2
    z = torch.log(torch.tensor([[target, rest, rest]], dtype=torch.float64)).requires_grad_()
    damping_loss(z, torch.tensor([0]), lam).backward()
    assert z.grad[0, 0].item() == pytest.approx(0.0, abs=1e-12)


def test_power_sqrt_equals_eq_4_14_and_its_shares_sum_back():
    cfg = LossConfig(name="power_sqrt", lam=0.3)
    outs = [_logits(seed=s) for s in range(3)]
    y = torch.tensor([0, 1, 2, 3, 1])
    got = make_loss(cfg, 4)(outs, y).total
    logps = [torch.log_softmax(o, -1) for o in outs]
    ce = sum(-lp[torch.arange(5), y] for lp in logps)
    d2 = sum(lp[:, -1] ** 2 for lp in logps)
    want = (ce + 0.3 * d2.sqrt()).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


def test_damping_loss_sums_eq_4_5_over_exits_with_weights():
    cfg = LossConfig(name="damping", lam=0.1, weights=(0.5, 2.0))
    outs = [_logits(seed=1), _logits(seed=2)]
    y = torch.tensor([3, 0, 1, 2, 2])
    got = make_loss(cfg, 4)(outs, y)
    want = 0.5 * damping_loss(outs[0], y, 0.1) + 2.0 * damping_loss(outs[1], y, 0.1)
    assert got.total.item() == pytest.approx(want.item(), rel=1e-12)
    assert got.damping.shape == (2,)
    assert got.damping[1].item() == pytest.approx(torch.softmax(outs[1], -1)[:, -1].mean().item())


def test_dynamic_weights_are_detached_bounded_and_grow_with_damping_term():
    d = torch.tensor([[0.1, 0.5, 2.0], [3.0, 0.2, 1.0]], requires_grad=True)
    w = dynamic_weights(d, alpha=0.8)
    assert not w.requires_grad
    assert (w > 0.2).all() and (w < 1.8).all()
    flat_d, flat_w = d.detach().flatten(), w.flatten()
    order = flat_d.argsort()
    assert (flat_w[order].diff() > 0).all()


def test_dynamic_weights_change_the_gradient_only_through_the_losses():
    cfg_w = LossConfig(name="power_sqrt", lam=0.2, dynamic_weights=True, alpha=0.5)
    outs = [_logits(seed=s).requires_grad_() for s in range(3)]
    y = torch.tensor([0, 1, 2, 3, 1])
    res = make_loss(cfg_w, 4)(outs, y)
    res.total.backward()
    # same value computed by hand with the weights as constants
    logps = [torch.log_softmax(o.detach(), -1) for o in outs]
    d = torch.stack([-lp[:, -1] for lp in logps])
    ce = torch.stack([-lp[torch.arange(5), y] for lp in logps])
    w = dynamic_weights(d, 0.5)
    share = d ** 2 / (d ** 2).sum(0).sqrt()
    assert res.total.item() == pytest.approx((w * (ce + 0.2 * share)).mean(1).sum().item(), rel=1e-10)


def test_label_smoothing_and_sum_ce_report_the_same_exit_ce():
    outs = [_logits(seed=s)[:, :4] for s in range(2)]
    y = torch.tensor([0, 1, 2, 3, 1])
    plain = make_loss(LossConfig(name="sum_ce"), 4)(outs, y)
    smooth = make_loss(LossConfig(name="label_smoothing", smoothing=0.2), 4)(outs, y)
    assert torch.allclose(plain.exit_ce, smooth.exit_ce)
    assert smooth.total.item() != pytest.approx(plain.total.item())
    want = sum(torch.nn.functional.cross_entropy(o, y) for o in outs)
    assert plain.total.item() == pytest.approx(want.item())


def test_asti_objective_terms():
    cfg = LossConfig(name="asti", beta=0.5, lam=0.01, p=2.0)
    outs = [_logits(seed=s)[:, :4] for s in range(3)]
    y = torch.tensor([0, 1, 2, 3, 1])
    sq = [torch.full((5,), v, dtype=torch.float64) for v in (1.0, 2.0, 3.0)]
    got = make_loss(cfg, 4)(outs, y, sq).total
    ce = [torch.nn.functional.cross_entropy(o, y) for o in outs]
    want = ce[2] + 0.5 * (ce[0] + ce[1]) + 0.01 * (1 * 1.0 + 4 * 2.0 + 9 * 3.0)
    assert got.item() == pytest.approx(want.item())


def test_damping_losses_refuse_heads_without_the_damping_neuron():
    outs = [_logits()[:, :4]]
    with pytest.raises(ConfigError, match="damping neuron"):
        make_loss(LossConfig(name="damping", lam=0.1), 4)(outs, torch.zeros(5, dtype=torch.long))


def test_unknown_loss_and_negative_lambda_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=r"loss.name: unknown loss 'focal'"):
        load_vision_config({"loss": {"name": "focal"}})
    with pytest.raises(ConfigError, match=r"loss.lam: lambda must be >= 0, got -0.1"):
        load_vision_config({"loss": {"name": "damping", "lam": -0.1}})
    with pytest.raises(ConfigError, match="loss.weights: 3 weights for a model with 2 exits"):
        make_loss(LossConfig(weights=(1.0, 1.0, 1.0)), 4)([_logits()[:, :4]] * 2, torch.zeros(5, dtype=torch.long))
