"""Host syncs of the staged forward, counted per stage by a TorchDispatchMode.

On a GPU every op that needs a device value on the host (`nonzero` for a row count, `.item()`
and `bool(t)` through `_local_scalar_dense`, boolean indexing through `nonzero`) stalls the
stream; the staged early-exit forward was slower than the full forward there for that
reason (issue 19). The counts are pinned: a policy that decides on the device costs one
sync per compacting exit and none where stopped rows stay in the batch (masked)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dpv.evaluator import BatchedEvaluator
from dpv.exits import DynamicThreshold, FixedExit, Patience, run_online
from tests.test_exits import random_positions
from tests.test_nets import small_net

SYNCING = {"nonzero", "item", "_local_scalar_dense", "is_nonzero", "masked_select"}


def _bool_index(func, args) -> bool:
    """aten.index / index_put with a bool mask: boolean indexing, a nonzero inside."""
    if func.overloadpacket.__name__ not in ("index", "index_put", "index_put_"):
        return False
    indices = args[1] if len(args) > 1 else []
    return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in indices or [])


class SyncCounter(TorchDispatchMode):
    """Counts host-syncing aten ops, keyed by the stage running when they happen: 'stem',
    stage k (from the stage's forward up to the next stage's), and 'before' the stem."""

    def __init__(self, net):
        super().__init__()
        self.where = "before"
        self.counts: Counter = Counter()
        self.names: Counter = Counter()
        self._hooks = [net.stem.register_forward_pre_hook(lambda m, a: self._at("stem"))]
        for k, stage in enumerate(net.stages):
            self._hooks.append(stage.register_forward_pre_hook(lambda m, a, k=k: self._at(k)))

    def _at(self, where):
        self.where = where

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING or _bool_index(func, args):
            self.counts[self.where] += 1
            self.names[name] += 1
        return func(*args, **(kwargs or {}))

    def per_stage(self, num_exits):
        return [self.counts[k] for k in range(num_exits)]

    def close(self):
        for h in self._hooks:
            h.remove()


def count_syncs(net, fn):
    counter = SyncCounter(net)
    try:
        with torch.inference_mode(), counter:
            fn()
    finally:
        counter.close()
    return counter


@pytest.fixture(scope="module")
def setup():
    net, g = small_net(seed=3)  # 3 exits
    planes, masks = random_positions(g, 40)
    return net, planes, masks


def test_counter_sees_the_syncs_it_is_for():
    net, _ = small_net()
    x = torch.randn(4, 3)

    def syncing():
        x.sum().item()
        bool(x[0, 0] > 0)
        x[x > 0]
        torch.nonzero(x)

    c = count_syncs(net, syncing)
    assert c.counts["before"] == 4
    assert c.names["_local_scalar_dense"] + c.names["item"] >= 1 and c.names["nonzero"] == 1


def test_device_decisions_sync_once_per_compacting_exit(setup):
    net, planes, masks = setup
    policy = DynamicThreshold(0.05, 0.08)  # stops some rows at exit 0, the rest go on
    x = torch.from_numpy(planes)
    r = np.linspace(0, 1, len(planes))
    res = []
    c = count_syncs(net, lambda: res.append(run_online(net, x, policy, lambda o: o.policy_logits,
                                                       masks, r)))
    assert 0 < (res[0].exit_index == 0).sum() < len(planes)
    assert c.per_stage(3) == [1, 1, 0]  # one row count per compacting exit, none at the last
    assert c.counts["stem"] == 0 and c.counts["before"] == 0
    assert set(c.names) == {"nonzero"}  # no .item(), no boolean indexing


def test_masked_exits_never_sync(setup):
    net, planes, masks = setup
    x = torch.from_numpy(planes)
    r = np.linspace(0, 1, len(planes))
    res = []
    c = count_syncs(net, lambda: res.append(run_online(
        net, x, DynamicThreshold(0.05, 0.08), lambda o: o.policy_logits, masks, r, keep_exited=[True, True])))
    assert sum(c.counts.values()) == 0
    # and the same decisions and outputs as the compacting forward
    ref = run_online(net, x, DynamicThreshold(0.05, 0.08), lambda o: o.policy_logits, masks, r)
    np.testing.assert_array_equal(res[0].exit_index, ref.exit_index)
    torch.testing.assert_close(res[0].outputs.policy_logits, ref.outputs.policy_logits)
    torch.testing.assert_close(res[0].outputs.value, ref.outputs.value)


def test_masked_then_compacted_exit_syncs_once(setup):
    net, planes, masks = setup
    x = torch.from_numpy(planes)
    c = count_syncs(net, lambda: run_online(net, x, DynamicThreshold(0.05, 0.08), lambda o: o.policy_logits,
                                            masks, np.linspace(0, 1, len(planes)), keep_exited=[True, False]))
    assert c.per_stage(3) == [0, 1, 0]


def test_host_policy_syncs_only_to_compact(setup):
    """A policy that looks back (Patience) decides on the host from logits it copies there
    (not an aten op on a CPU tensor); the forward itself still adds only the row count."""
    net, planes, masks = setup
    x = torch.from_numpy(planes)
    c = count_syncs(net, lambda: run_online(net, x, Patience(2), lambda o: o.policy_logits, masks))
    assert c.per_stage(3) == [1, 1, 0]
    assert set(c.names) <= {"nonzero"}


def test_evaluator_call_syncs_per_exit_not_per_row(setup):
    net, planes, masks = setup
    for n in (8, 40):
        ev = BatchedEvaluator(net, DynamicThreshold(0.05, 0.08))
        c = count_syncs(net, lambda: ev.evaluate(planes[:n], masks[:n], np.linspace(0, 1, n)))
        assert sum(c.counts.values()) <= net.num_exits - 1  # whatever the batch size
    fixed = BatchedEvaluator(net, FixedExit(-1))
    c = count_syncs(net, lambda: fixed.evaluate(planes, masks))
    assert sum(c.counts.values()) == 0


def test_compaction_plan_masks_where_compacting_costs_more_than_it_saves():
    from dpv.nets.compaction import CompactionPlan, StageCosts

    net, _ = small_net()
    plan = CompactionPlan(net)
    assert plan.bucket(40) == 64
    # launch-bound stages (half the rows cost as much as all): nothing to save, keep them in
    plan.costs[64] = StageCosts(64, np.full(3, 1e-3), np.full(3, 1e-3), compact=1e-4)
    assert plan.keep_exited(40) == [True, True]
    # row-bound stages (half the rows, half the time): compacting saves more than it costs
    plan.costs[64] = StageCosts(64, np.full(3, 1e-3), np.full(3, 5e-4), compact=1e-4)
    assert plan.keep_exited(40) == [False, False]
    # ... unless (almost) no row stops there: the shares come from the calls seen
    for _ in range(60):
        plan.observe(np.array([1, 2, 2, 2]))
    assert plan.stopped_by[0] < 0.01 and plan.keep_exited(40) == [True, False]


def test_auto_compaction_gives_the_compacting_evaluators_rows(setup):
    net, planes, masks = setup
    r = np.linspace(0, 1, len(planes))
    auto = BatchedEvaluator(net, DynamicThreshold(0.05, 0.08), compaction="auto")
    got = auto.evaluate(planes, masks, r)
    assert auto.plan is not None and auto.plan.costs  # measured at this batch size
    want = BatchedEvaluator(net, DynamicThreshold(0.05, 0.08)).evaluate(planes, masks, r)
    np.testing.assert_array_equal(got.exit_index, want.exit_index)
    np.testing.assert_allclose(got.policy, want.policy, atol=1e-6)
    np.testing.assert_allclose(got.value, want.value, atol=1e-6)
