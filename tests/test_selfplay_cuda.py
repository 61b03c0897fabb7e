"""The learner on CUDA (skipped without a GPU). Imports nothing that needs OpenSpiel or Ray,
so it also runs on GPU machines that have only torch."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from dpv.checkpoint import load_checkpoint, save_checkpoint
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.learner import Learner, pick_device
from selfplay.replay import ReplayBuffer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def go9_shapes():
    # the 9x9 Go adapter's shapes, without building the game (no pyspiel needed)
    return types.SimpleNamespace(observation_shape=(17, 9, 9), num_actions=82, num_symmetries=1)


def filled_buffer(game, n=512, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(n, game.observation_shape, game.num_actions, None, "none")
    pol = rng.random((n, game.num_actions)).astype(np.float32)
    buf.add((rng.random((n,) + game.observation_shape) < 0.3).astype(np.uint8),
            pol / pol.sum(1, keepdims=True), rng.choice([-1.0, 1.0], n).astype(np.float32))
    return buf


def test_auto_device_is_cuda_exactly_when_present():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@cuda
def test_learner_trains_on_cuda_and_resumes_on_cpu(tmp_path):
    cfg = load_run_config(CONFIG_DIR / "go9.yaml", ["train.device=auto", "train.batch_size=64"])
    game = go9_shapes()
    gpu = Learner(cfg, game)
    assert next(gpu.net.parameters()).is_cuda
    buf = filled_buffer(game)
    rng = np.random.default_rng(1)
    batch = buf.sample(64, rng)
    first = gpu.step(batch)
    for _ in range(30):
        last = gpu.step(batch)
    assert all(l < f for l, f in zip(last.policy, first.policy))
    # the checkpoint a GPU run writes is readable and resumable on a CPU-only machine
    save_checkpoint(tmp_path / "s.pt", {"learner": gpu.state_dict()})
    state = load_checkpoint(tmp_path / "s.pt", "cpu")["learner"]
    assert all(not v.is_cuda for v in state["model"].values())
    cpu = Learner(cfg, game, "cpu")
    cpu.load_state_dict(state)
    a, b = gpu.step(batch), cpu.step(batch)
    assert a.loss == pytest.approx(b.loss, rel=1e-3)
    assert cpu.steps == gpu.steps == 32
