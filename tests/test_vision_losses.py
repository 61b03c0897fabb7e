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


@pytest.mark.parametrize("mapping", ["minmax", "tanh"])
def test_dynamic_weights_are_detached_bounded_and_grow_with_damping_term(mapping):
    d = torch.tensor([[0.1, 0.5, 2.0], [3.0, 0.2, 1.0]], requires_grad=True)
    w = dynamic_weights(d, alpha=0.8, mapping=mapping)
    assert not w.requires_grad
    assert (w >= 0.2 - 1e-7).all() and (w <= 1.8 + 1e-7).all()
    flat_d, flat_w = d.detach().flatten(), w.flatten()
    order = flat_d.argsort()
    assert (flat_w[order].diff() > 0).all()


def test_minmax_weights_are_the_affine_map_of_the_damping_term_onto_plus_minus_alpha():
    d = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    w = dynamic_weights(d, alpha=0.5, mapping="minmax")
    # d_min = 1 -> 1 - alpha, d_max = 5 -> 1 + alpha, linear in between (joint over exits)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.75], [1.0, 1.5]]))
    torch.testing.assert_close(dynamic_weights(torch.full((2, 3), 4.0), 0.5), torch.ones(2, 3))


def test_tanh_weights_are_alpha_tanh_of_the_standardised_damping_term():
    d = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    z = (d - d.mean()) / d.std()
    torch.testing.assert_close(dynamic_weights(d, 0.3, "tanh"), 1 + 0.3 * torch.tanh(z))


def test_unknown_weight_map_is_a_config_error():
    with pytest.raises(ConfigError, match="loss.weight_map: unknown mapping 'rank'"):
        load_vision_config({"loss": {"name": "power_sqrt", "dynamic_weights": True, "weight_map": "rank"}})


@pytest.mark.parametrize("mapping", ["minmax", "tanh"])
def test_dynamic_weights_change_the_gradient_only_through_the_losses(mapping):
    """Eq. 4.21 with the weights as constants: the gradient is sum_k mean_i w_i^(k) dL_i^(k),
    and differs from the gradient the same weights would give if they were differentiated."""
    cfg_w = LossConfig(name="power_sqrt", lam=0.2, dynamic_weights=True, alpha=0.5, weight_map=mapping)
    outs = [_logits(seed=s).requires_grad_() for s in range(3)]
    y = torch.tensor([0, 1, 2, 3, 1])
    res = make_loss(cfg_w, 4)(outs, y)
    grads = torch.autograd.grad(res.total, outs)

    def per_exit_losses(zs):  # L_i^(k) of eq. 4.14 split in shares, (K, B)
        logps = [torch.log_softmax(z, -1) for z in zs]
        d = torch.stack([-lp[:, -1] for lp in logps])
        ce = torch.stack([-lp[torch.arange(5), y] for lp in logps])
        return ce + 0.2 * d ** 2 / (d ** 2).sum(0).sqrt(), d

    # by hand: the weights computed once, then held constant
    zs = [o.detach().clone().requires_grad_() for o in outs]
    per_exit, d = per_exit_losses(zs)
    w = dynamic_weights(d, 0.5, mapping)
    want = (w * per_exit).mean(1).sum()
    assert res.total.item() == pytest.approx(want.item(), rel=1e-10)
    for g, h in zip(grads, torch.autograd.grad(want, zs)):
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-12)
    # the same value with the weights differentiated (the thesis's ablation) moves the gradient
    zs2 = [o.detach().clone().requires_grad_() for o in outs]
    per_exit2, d2 = per_exit_losses(zs2)
    if mapping == "minmax":
        w2 = 1 + 0.5 * (2 * (d2 - d2.min()) / (d2.max() - d2.min()) - 1)
    else:
        w2 = 1 + 0.5 * torch.tanh((d2 - d2.mean()) / d2.std())
    with_grad = torch.autograd.grad((w2 * per_exit2).mean(1).sum(), zs2)
    assert max((g - h).abs().max().item() for g, h in zip(grads, with_grad)) > 1e-3
    # and unit weights (no dynamic training) give yet another gradient
    plain = torch.autograd.grad(make_loss(LossConfig(name="power_sqrt", lam=0.2), 4)(outs, y).total, outs)
    assert max((g - h).abs().max().item() for g, h in zip(grads, plain)) > 1e-3


def test_damping_with_a_lambda_per_exit_is_eq_4_13():
    cfg = LossConfig(name="damping", lam=0.9, lam_per_exit=(0.0, 0.05, 0.3))
    outs = [_logits(seed=s).requires_grad_() for s in range(3)]
    y = torch.tensor([3, 0, 1, 2, 2])
    got = make_loss(cfg, 4)(outs, y).total
    want = sum(damping_loss(o, y, lam) for o, lam in zip(outs, (0.0, 0.05, 0.3)))
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    got.backward()
    # each exit's damping logit follows Proposition 2 with its own lambda^(k)
    for o, lam in zip(outs, (0.0, 0.05, 0.3)):
        f = torch.softmax(o.detach(), -1)
        torch.testing.assert_close(o.grad[:, -1] * 5, (1 + lam) * f[:, -1] - lam)
    # no per-exit list: the scalar lam at every exit
    scalar = make_loss(LossConfig(name="damping", lam=0.05), 4)(outs, y).total
    assert scalar.item() == pytest.approx(sum(damping_loss(o, y, 0.05) for o in outs).item(), rel=1e-12)


def test_lambda_per_exit_errors_name_the_field():
    with pytest.raises(ConfigError, match="loss.lam_per_exit: 2 values for a model with 3 exits"):
        make_loss(LossConfig(name="damping", lam_per_exit=(0.1, 0.2)), 4)([_logits()] * 3, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ConfigError, match="loss.lam_per_exit: only the damping loss"):
        load_vision_config({"loss": {"name": "power_sqrt", "lam_per_exit": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="loss.lam_per_exit: every lambda must be >= 0"):
        load_vision_config({"loss": {"name": "damping", "lam_per_exit": [0.1, -0.2]}})


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
