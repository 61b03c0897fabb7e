"""The thesis's CIFAR settings as named configs: they read a CIFAR folder the user brings."""
import subprocess
import sys
from pathlib import Path

import pytest

from eexit_vision.config import load_vision_config
from eexit_vision.datasets import load_dataset, write_tiny_cifar
from eexit_vision.losses import make_loss
from eexit_vision.models import build_model

ROOT = Path(__file__).resolve().parents[1]
THESIS_LAMBDA = {"cifar10": 0.075, "cifar100": 0.005}  # thesis 4.3.1


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_config_carries_the_thesis_settings(name):
    cfg = load_vision_config(ROOT / "configs" / f"vision_{name}.yaml")
    assert cfg.data.name == name and cfg.data.augment
    assert (cfg.loss.name, cfg.loss.lam, cfg.loss.dynamic_weights, cfg.loss.alpha) == \
        ("power_sqrt", THESIS_LAMBDA[name], True, 0.8)
    t = cfg.train
    assert (t.epochs, t.batch_size, t.optimizer, t.lr, t.momentum) == (300, 64, "sgd", 0.1, 0.9)
    assert len(cfg.model.exits) == 7


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_config_reads_a_folder_the_user_brings(tmp_path, name):
    write_tiny_cifar(tmp_path, name, train=30, test=10)
    cfg = load_vision_config(ROOT / "configs" / f"vision_{name}.yaml", [f"data.root={tmp_path}"])
    data = load_dataset(cfg.data)
    assert data.num_classes == (10 if name == "cifar10" else 100) and data.input_shape == (3, 32, 32)
    net = build_model(cfg.model, data.input_shape, data.num_classes, extra_outputs=1)
    assert net.num_exits == 7
    x, y = data.split("train").x[:4], data.split("train").y[:4]
    assert make_loss(cfg.loss, data.num_classes)(net(x), y).total.isfinite()


def test_missing_cifar_folder_is_one_line_and_exit_2_with_nothing_written(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "eexit_vision.train", "--config", "configs/vision_cifar10.yaml",
                          "--set", f"data.root={tmp_path / 'no_cifar'}", "--set", f"train.out={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1, res.stderr
    assert err[0].startswith("error: CIFAR folder not found") and "no_cifar" in err[0]
    assert not out.exists()
