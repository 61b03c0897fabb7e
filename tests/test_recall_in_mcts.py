"""Recall inside DPV-MCTS (issue 20, fidelity item 3): a recall policy (T-Tamer) answers a
leaf from the exit it selects, not the one the row stopped at, and the search uses that
answer: priors, values and backed-up statistics come from the recalled exit, while the
FLOPs charged are those of every exit the row computed."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.evaluator import BatchedEvaluator, Evaluation, Evaluator
from dpv.exits import masked_softmax, run_offline
from dpv.games import make_game
from dpv.mcts import MCTS, run_searches
from dpv.nets import build_policy_value_net
from dpv.nets.multi_exit import MultiExitNet
from eexit_vision.policies import TTamer
from tests.test_vision_policies_in_mcts import positions, record_trace


@pytest.fixture(scope="module")
def game():
    return make_game(GameConfig(name="tic_tac_toe"))


def sure_then_unsure_net(game):
    """Exit 0 confident, exits 1 and 2 uniform (zero policy layer): with 4 or more legal
    moves the least loss 1 - max softmax is exit 0's, whichever exit a row stops at."""
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=3, channels=8, exits=(1, 2, 3), value_hidden=8), game).eval()
    with torch.no_grad():
        net.heads[0].policy_fc.weight.mul_(200.0)
        for head in net.heads[1:]:
            head.policy_fc.weight.zero_()
            head.policy_fc.bias.zero_()
    return net


def never_stop_early(num_exits):
    """T-Tamer whose if-stop matrices never stop before the last exit; two loss bins, split
    at 0.7 (below the uniform loss 0.75 over 4 legal moves)."""
    stop = np.zeros((num_exits, 2, 2), dtype=bool)
    stop[-1] = True
    return TTamer(edges=np.array([0.7]), stop_table=stop, lam=0.0)


def full_outputs(net, planes):
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(planes, dtype=np.float32)))


class Recorder(Evaluator):
    """Passes rows to a real evaluator and keeps what went in and what came back."""

    def __init__(self, inner: BatchedEvaluator):
        self.inner = inner
        self.num_exits = inner.num_exits
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, Evaluation]] = []

    def exit_cost(self, k):
        return self.inner.exit_cost(k)

    def deepest_flops(self):
        return self.inner.deepest_flops()

    def evaluate(self, planes, legal_mask, budget_fraction=None, max_exit=None, states=None):
        out = self.inner.evaluate(planes, legal_mask, budget_fraction, max_exit, states)
        cap = None if max_exit is None else np.array(max_exit)
        self.calls.append((np.array(planes), np.array(legal_mask), cap, out))
        return out


def test_evaluator_answers_from_the_recalled_exit(game):
    net = sure_then_unsure_net(game)
    states = positions(game, 12, seed=0)
    planes = np.stack([s.observation() for s in states])
    mask = np.stack([s.legal_mask() for s in states])
    ev = BatchedEvaluator(net, never_stop_early(net.num_exits)).evaluate(planes, mask)
    assert ev.exit_index.tolist() == [2] * 12  # every row ran to the last exit ...
    assert ev.answer_exit.tolist() == [0] * 12  # ... and exit 0 answers for it
    full = full_outputs(net, planes)
    np.testing.assert_allclose(ev.policy, masked_softmax(full[0].policy_logits.numpy(), mask), atol=1e-6)
    np.testing.assert_allclose(ev.value, full[0].value.numpy(), atol=1e-6)
    assert not np.allclose(ev.value, full[2].value.numpy(), atol=1e-3)  # the exits disagree
    assert np.all(ev.flops == net.flops().staged(2))  # paid for every exit computed


def test_ttamer_with_recall_inside_dpv_mcts_answers_from_the_recalled_exit(game):
    net = sure_then_unsure_net(game)
    rec = Recorder(BatchedEvaluator(net, never_stop_early(net.num_exits)))
    cfg = MCTSConfig(exit_mode="dynamic", n_ref=6, leaves_per_call=2)
    states = positions(game, 3, seed=2)
    searches = [MCTS(game, cfg, rec, np.random.default_rng(i)) for i in range(len(states))]
    results = run_searches(searches, states, rec, add_noise=False)

    answers = []
    for planes, mask, cap, out in rec.calls:  # every evaluation the searches got
        full = full_outputs(net, planes)
        trace = np.stack([np.where(mask, o.policy_logits.numpy(), -1e4) for o in full])
        # the same policy offline on the same logits; a row the search capped at exit c
        # (budget nearly spent) computed exits 0..c only
        cap = np.full(len(mask), 2) if cap is None else np.minimum(cap, 2)
        np.testing.assert_array_equal(out.exit_index, cap)
        for c in np.unique(cap):
            rows = cap == c
            off = run_offline(rec.inner.policy, trace[: c + 1, rows])
            np.testing.assert_array_equal(out.answer_exit[rows], off.answer_exit)
        idx = np.arange(len(mask))
        logits = np.stack([o.policy_logits.numpy() for o in full])[out.answer_exit, idx]
        values = np.stack([o.value.numpy() for o in full])[out.answer_exit, idx]
        np.testing.assert_allclose(out.policy, masked_softmax(logits, mask), atol=1e-6)
        np.testing.assert_allclose(out.value, values, atol=1e-6)
        answers.append(out.answer_exit)
    answers = np.concatenate(answers)
    assert len(answers) > len(states) and (answers == 0).mean() > 0.5  # exit 0 answers most leaves

    for search, state, res in zip(searches, states, results):
        # the root was expanded with exit 0's prior and holds exit 0's value
        t = search.tree
        root_out = full_outputs(net, state.observation()[None])
        want_prior = masked_softmax(root_out[0].policy_logits.numpy(), state.legal_mask()[None])[0]
        first, n = t.first_child[t.root], t.num_children[t.root]
        kids = np.arange(first, first + n)
        np.testing.assert_allclose(t.prior[kids], want_prior[t.action[kids]], atol=1e-6)
        assert t.raw_value[t.root] == pytest.approx(float(root_out[0].value[0]), abs=1e-6)
        assert t.raw_value[t.root] != pytest.approx(float(root_out[2].value[0]), abs=1e-4)
        # charged for the exits computed (all, unless capped), within the budget
        assert res.exit_histogram[-1] > 0
        assert res.flops == pytest.approx(float(res.exit_histogram @ net.flops().staged_all()))
        assert res.flops <= res.budget_flops


def test_fitted_ttamer_online_answers_match_its_offline_answers(game):
    """A T-Tamer fitted on a trace, with a cost per exit: rows stop at different exits and
    some answer from an earlier one; online (the evaluator) and offline (the trace) agree on
    both, and each row's policy and value are its answering exit's."""
    torch.manual_seed(0)
    net = build_policy_value_net(NetConfig(blocks=3, channels=8, exits=(1, 2, 3), value_hidden=8), game).eval()
    with torch.no_grad():
        for k, head in enumerate(net.heads):
            head.policy_fc.weight.mul_(20.0 if k != 1 else 60.0)
    trace, _, _ = record_trace(net, positions(game, 300, seed=0))
    policy = TTamer.fit(trace, lam=0.05)
    probe, planes, mask = record_trace(net, positions(game, 200, seed=1))
    ev = BatchedEvaluator(net, policy).evaluate(planes, mask)
    off = run_offline(policy, probe.logits, flops=trace.flops)
    np.testing.assert_array_equal(ev.exit_index, off.exit_index)
    np.testing.assert_array_equal(ev.answer_exit, off.answer_exit)
    recalled = ev.answer_exit < ev.exit_index
    assert recalled.any() and (~recalled).any() and len(np.unique(ev.exit_index)) > 1
    full = full_outputs(net, planes)
    idx = np.arange(len(mask))
    logits = np.stack([o.policy_logits.numpy() for o in full])[ev.answer_exit, idx]
    values = np.stack([o.value.numpy() for o in full])[ev.answer_exit, idx]
    np.testing.assert_allclose(ev.policy, masked_softmax(logits, mask), atol=1e-6)
    np.testing.assert_allclose(ev.value, values, atol=1e-6)


class Out(NamedTuple):
    logits: torch.Tensor
    aux: torch.Tensor | None = None  # only the last exit has it (as an auxiliary head)


class Head(torch.nn.Module):
    def __init__(self, with_aux):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.with_aux = with_aux

    def forward(self, h):
        return Out(self.fc(h), h.sum(-1) if self.with_aux else None)


def test_staged_forward_keeps_every_exit_output_whatever_the_heads_return():
    """Recall answers from any exit a row reached: `select` rebuilds the heads' own output
    type, and an output only some exits give is NaN for rows answered by the others."""
    torch.manual_seed(0)
    net = MultiExitNet(torch.nn.Identity(), [torch.nn.Linear(4, 4) for _ in range(3)],
                       [Head(False), Head(False), Head(True)])
    x = torch.randn(6, 4)
    stop_at = torch.tensor([0, 2, 1, 2, 0, 1])
    with torch.no_grad():
        res = net.staged_forward(x, lambda k, out, rows: stop_at.index_select(0, rows) == k)
        full = net(x)
        answer = torch.tensor([0, 1, 0, 2, 0, 1])  # each at or before its stopping exit
        got = res.select(answer)
    assert isinstance(got, Out) and res.exit_index.tolist() == stop_at.tolist()
    for i, k in enumerate(answer.tolist()):
        torch.testing.assert_close(got.logits[i], full[k].logits[i])
    assert torch.isnan(got.aux[answer != 2]).all()
    torch.testing.assert_close(got.aux[3], full[2].aux[3])
    assert [len(r) for r in res.exit_rows] == [6, 4, 2]  # the rows that reached each exit
