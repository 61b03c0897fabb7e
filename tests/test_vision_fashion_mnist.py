"""Fashion-MNIST: IDX parsing (files written here), bad-input errors through the CLI, the
validation split, the fashion_cnn model, and the Debian dataset itself where it is installed."""
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpv.errors import DPVError
from eexit_vision.config import DataConfig, ModelConfig, load_vision_config
from eexit_vision.datasets import load_dataset
from eexit_vision.fashion_mnist import (DEBIAN_ROOT, FILES, INSTALL_HINT, parse_idx, read_fashion_mnist,
                                        read_idx, write_idx, write_tiny_fashion_mnist)
from eexit_vision.models import build_model

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "vision_fashion_mnist.yaml"
debian = pytest.mark.skipif(not Path(DEBIAN_ROOT, FILES["train"][0] + ".gz").is_file(),
                            reason=f"Fashion-MNIST not installed at {DEBIAN_ROOT} ({INSTALL_HINT})")


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eexit_vision.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_parse_idx_reads_a_hand_built_file():
    # magic 0 0 0x08 ndim=2, sizes 2 x 3 (big-endian), then 6 data bytes
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    a = parse_idx(raw, Path("hand.idx"))
    assert a.dtype == np.uint8 and a.tolist() == [[1, 2, 3], [4, 5, 255]]


@pytest.mark.parametrize("compress", [True, False])
def test_write_then_read_idx_round_trips(tmp_path, compress):
    a = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / ("x.gz" if compress else "x"), a, compress=compress)
    assert np.array_equal(read_idx(path), a)


def test_idx_with_fewer_data_bytes_than_its_header_says_is_an_error():
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3])  # says 5 labels, holds 3
    with pytest.raises(DPVError, match=r"x\.idx is truncated: 3 data bytes for shape \(5,\) \(5 expected\)"):
        parse_idx(raw, Path("x.idx"))


def test_idx_with_a_wrong_magic_number_is_an_error():
    with pytest.raises(DPVError, match="bad magic number"):
        parse_idx(b"\x1f\x8b\x08\x00" + bytes(20), Path("y"))


def test_cut_off_gzip_file_is_one_error_naming_path_and_package(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-30])  # a copy that stopped early
    with pytest.raises(DPVError) as e:
        read_idx(path)
    msg = str(e.value)
    assert str(path) in msg and "truncated" in msg and INSTALL_HINT in msg and "\n" not in msg


def test_tiny_folder_loads_with_a_validation_split_fixed_by_the_seed(tmp_path):
    write_tiny_fashion_mnist(tmp_path, train=100, test=30)
    cfg = DataConfig(name="fashion_mnist", root=str(tmp_path), val_fraction=0.2, seed=1)
    a, b = load_dataset(cfg), load_dataset(cfg)
    c = load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path), val_fraction=0.2, seed=2))
    assert a.num_classes == 10 and a.input_shape == (1, 28, 28) and not a.augment
    assert [len(a.split(s)) for s in ("train", "val", "test")] == [80, 20, 30]
    assert torch.equal(a.split("val").x, b.split("val").x)
    assert not torch.equal(a.split("val").x, c.split("val").x)
    assert torch.equal(a.split("test").x, c.split("test").x)  # the test set is not resplit
    # train and val partition the 100 training images: together they are exactly that set
    (xtr, _), _ = read_fashion_mnist(tmp_path, full_size=False)
    raw = torch.from_numpy(xtr.copy()).float().flatten(1)
    pooled = torch.cat([a.split("train").x, a.split("val").x]).flatten(1)
    pixels = lambda t: sorted(map(tuple, t.round(decimals=3).tolist()))
    assert pixels(pooled) == pixels((raw / 255.0 - 0.2860) / 0.3530)


def test_missing_folder_via_the_cli_is_one_line_and_exit_2(tmp_path):
    where = tmp_path / "nowhere"
    r = _cli("--config", str(CONFIG), "--set", f"data.root={where}", "--set", f"train.out={tmp_path / 'out'}")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(where) in lines[0] and INSTALL_HINT in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


def test_truncated_idx_file_via_the_cli_is_one_line_and_exit_2(tmp_path):
    root = write_tiny_fashion_mnist(tmp_path / "fm")
    labels = root / (FILES["test"][1] + ".gz")
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-5]))  # 5 labels short
    r = _cli("--config", str(CONFIG), "--set", f"data.root={root}", "--set", f"train.out={tmp_path / 'out'}")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(labels) in lines[0] and "truncated" in lines[0] and INSTALL_HINT in lines[0]


def test_fashion_cnn_has_four_exits_with_flops_matching_torch_counter():
    net = build_model(ModelConfig(name="fashion_cnn", width=16), (1, 28, 28), 10).eval()
    assert net.num_exits == 4
    x = net.example_input(1)
    for k in range(4):
        with torch.no_grad(), FlopCounterMode(display=False) as c:
            net.forward_to(x, k)
        assert net.flops().fixed(k) == pytest.approx(c.get_total_flops(), rel=1e-9)
    staged = net.flops().staged_all()
    assert (np.diff(staged) > 0).all() and staged[0] / staged[-1] < 0.25  # exits spread in cost


def test_reference_config_loads_with_debian_default_root():
    cfg = load_vision_config(CONFIG)
    assert cfg.data.name == "fashion_mnist" and cfg.model.name == "fashion_cnn"
    assert cfg.data.root == ""  # "" = the Debian path


def test_one_training_epoch_on_a_tiny_folder_writes_checkpoint_and_history(tmp_path):
    from eexit_vision.train import train

    root = write_tiny_fashion_mnist(tmp_path / "fm", train=64, test=16)
    cfg = load_vision_config(CONFIG, [f"data.root={root}", "model.width=4", "train.epochs=1",
                                      "train.batch_size=32", f"train.out={tmp_path / 'run'}",
                                      "train.progress=false", "train.tensorboard=false"])
    res = train(cfg, log=lambda s: None)
    assert res.checkpoint.is_file() and (tmp_path / "run" / "history.json").is_file()
    assert res.test_accuracy.shape == (4,) and res.flops.shape == (4,)


@debian
def test_debian_fashion_mnist_has_the_standard_sizes_and_balanced_test_set():
    d = load_dataset(DataConfig(name="fashion_mnist", val_fraction=0.1))
    assert [len(d.split(s)) for s in ("train", "val", "test")] == [54000, 6000, 10000]
    assert d.split("test").y.bincount().tolist() == [1000] * 10
    x = d.split("train").x
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01  # normalised


# ---------------------------------------------------------------- the study (tiny, fast settings)

TINY = ["model.width=4", "train.epochs=2", "train.batch_size=32"]


def _tiny_root(tmp_path) -> Path:
    return write_tiny_fashion_mnist(tmp_path / "fm", train=80, test=24)


def test_study_jobs_put_the_baselines_first_seed_first_then_whole_seeds():
    from eexit_vision.fashion_study import jobs

    assert jobs(["damping", "sum_ce"], [0, 1]) == [("sum_ce", 0), ("damping", 0), ("damping", 1), ("sum_ce", 1)]


def test_finished_training_is_read_back_and_cut_off_one_resumes(tmp_path):
    from eexit_vision.loss_study import train_once
    from eexit_vision.train import train

    over = [f"data.root={_tiny_root(tmp_path)}", *TINY]
    run = tmp_path / "run"
    cfg = load_vision_config(CONFIG, [*over, f"train.out={run}", "train.progress=false", "train.tensorboard=false"])
    train(cfg, stop_after=1, log=lambda s: None)  # a study killed after its first epoch
    first = train_once(str(CONFIG), over, run, traces=True)
    assert first["resumed_from_epoch"] == 1 and (run / "val.npz").is_file() and (run / "test.npz").is_file()
    stamp = (run / "last.pt").stat().st_mtime_ns
    again = train_once(str(CONFIG), over, run, traces=True)
    assert again == first and (run / "last.pt").stat().st_mtime_ns == stamp  # not retrained


def test_study_cli_writes_loss_combiner_and_policy_tables(tmp_path):
    root = _tiny_root(tmp_path)
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "eexit_vision.fashion_study", "--out", str(out), "--seeds", "2",
           "--variants", "sum_ce", "damping", "--points", "3", "--set", f"data.root={root}"]
    for o in TINY:
        cmd += ["--set", o]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    losses = (out / "losses.md").read_text()
    assert "mean ± std over 2 seeds" in losses and "| damping |" in losses and "Paired difference" in losses
    assert "| Bayes + CP |" in (out / "combiners.md").read_text()
    policies = (out / "policies.md").read_text()
    assert "EERO budget check" in policies and "| MSDNet thresholds |" in policies
    for f in ("losses.png", "policies/seed0/budget_curves.png", "policies/seed1/budget_curves.png"):
        assert (out / f).is_file()
    # a second call trains nothing: every run is read back
    r2 = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0 and "training" not in r2.stdout.replace("trainings finished", "")


@debian
@pytest.mark.slow
def test_reference_config_last_exit_reaches_90_percent_on_test(tmp_path):
    """The issue's bar: the README command trains fashion_cnn (about 5 min on one CPU thread)."""
    r = _cli("--config", str(CONFIG), "--set", f"train.out={tmp_path / 'run'}", "--set", "train.progress=false",
             timeout=3600)
    assert r.returncode == 0, r.stderr
    import json

    final = json.loads((tmp_path / "run" / "history.json").read_text())["final"]
    assert len(final["test_acc"]) == 4 and final["test_acc"][-1] >= 0.90
    assert "| 4 | 2.607e+07 | 1.000 |" in r.stdout  # each exit's FLOPs printed beside its accuracy


def test_study_trains_in_parallel_workers_as_it_does_one_at_a_time(tmp_path):
    """--workers 2: each training in its own process gives what the sequential study gives
    (CPU training with one thread is deterministic), and the tables are built the same way."""
    from eexit_vision.fashion_study import VARIANTS, run

    over = [f"data.root={_tiny_root(tmp_path)}", *TINY]
    variants = {v: VARIANTS[v] for v in ("sum_ce", "label_smoothing")}
    quiet = lambda line: None  # noqa: E731
    one = run(tmp_path / "one", str(CONFIG), [0, 1], variants, over, points=3, policies_too=False, log=quiet)
    lines: list[str] = []
    two = run(tmp_path / "two", str(CONFIG), [0, 1], variants, over, points=3, policies_too=False, workers=2,
              log=lines.append)
    # the pool trained all four; the sequential pass after it only read them back
    assert lines[0] == "training 4 runs, 2 at a time"
    assert sum(": read back" in ln for ln in lines) == 4 and not any(ln.endswith(": training") for ln in lines)
    assert two["seeds"] == [0, 1] and two["losses"]["variants"] == one["losses"]["variants"]
    assert (tmp_path / "two" / "losses.md").read_text() == (tmp_path / "one" / "losses.md").read_text()
