"""Training and trace jobs: resume, checkpoints, logging, traces, CIFAR-100 path, bad input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dpv.errors import CheckpointError
from eexit_vision import anytime, record_traces as trace_job, train as train_job
from eexit_vision.checkpoints import load_classifier_payload
from eexit_vision.config import load_vision_config
from eexit_vision.datasets import write_tiny_cifar
from eexit_vision.traces import load_trace

REPO = Path(__file__).resolve().parent.parent


def _synthetic_cfg(out, *extra):
    return load_vision_config({
        "data": {"name": "synthetic", "samples": 300, "difficulty": 0.5, "seed": 0},
        "model": {"name": "digits_cnn", "width": 4},
        "train": {"epochs": 2, "batch_size": 32, "out": str(out), "progress": False, "tensorboard": False},
    }, list(extra))


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    full = train_job.train(_synthetic_cfg(tmp_path / "a"), log=lambda s: None)
    cfg_b = _synthetic_cfg(tmp_path / "b")
    train_job.train(cfg_b, stop_after=1, log=lambda s: None)  # "killed" after epoch 1
    resumed = train_job.train(cfg_b, resume=True, log=lambda s: None)
    wa = load_classifier_payload(full.checkpoint)[0].state_dict()
    wb = load_classifier_payload(resumed.checkpoint)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert not list((tmp_path / "b").glob("*.tmp"))  # atomic writes leave no temp files


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    train_job.train(_synthetic_cfg(tmp_path, "train.epochs=1"), log=lambda s: None)
    with pytest.raises(CheckpointError, match="trained with another config"):
        train_job.train(_synthetic_cfg(tmp_path, "train.epochs=1", "loss.name=label_smoothing"),
                        resume=True, log=lambda s: None)


def test_tensorboard_gets_per_exit_loss_accuracy_and_damping_neuron(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _synthetic_cfg(tmp_path, "train.epochs=1", "train.tensorboard=true",
                         "loss.name=damping", "loss.lam=0.1")
    res = train_job.train(cfg, log=lambda s: None)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for k in range(1, 5):
        assert {f"loss/exit{k}", f"train_acc/exit{k}", f"val_acc/exit{k}", f"damping_neuron/exit{k}"} <= tags
    neuron = res.history[0]["damping_neuron"]
    assert len(neuron) == 4 and all(0 < v < 1 for v in neuron)
    assert res.test_damping.shape == (4,) and ((res.test_damping > 0) & (res.test_damping < 1)).all()


def test_trace_records_every_exit_of_the_checkpointed_model(tmp_path):
    res = train_job.train(_synthetic_cfg(tmp_path, "train.epochs=1", "loss.name=damping", "loss.lam=0.05"),
                          log=lambda s: None)
    t_val = trace_job.trace_checkpoint(str(res.checkpoint), "val", str(tmp_path / "val.npz"))
    trace_job.trace_checkpoint(str(res.checkpoint), "test", str(tmp_path / "test.npz"))
    t_test = load_trace(tmp_path / "test.npz")
    net = load_classifier_payload(res.checkpoint)[0].eval()
    assert t_test.logits.shape == (4, 60, 10)  # class logits only: the damping neuron is dropped
    assert t_test.model_id == t_val.model_id and t_test.split == "test"
    assert np.allclose(t_test.flops, net.flops().staged_all())
    acc = (t_test.logits.argmax(-1) == t_test.labels[None]).mean(1)
    assert np.allclose(acc, res.test_accuracy)


def test_cifar100_tiny_folder_end_to_end(tmp_path, capsys):
    write_tiny_cifar(tmp_path / "data", "cifar100", train=40, test=16)
    out = tmp_path / "run"
    train_job.main(["--set", "data.name=cifar100", "--set", f"data.root={tmp_path / 'data'}",
                    "--set", "model.name=resnet", "--set", "model.width=4", "--set", "model.blocks=3",
                    "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", f"train.out={out}",
                    "--set", "train.progress=false", "--set", "train.tensorboard=false"])
    for split in ("val", "test"):
        trace_job.main(["--checkpoint", str(out / "last.pt"), "--split", split, "--out", str(tmp_path / f"{split}.npz")])
    t = load_trace(tmp_path / "test.npz")
    assert t.logits.shape == (3, 16, 100) and t.num_classes == 100
    anytime.main([str(tmp_path / "test.npz"), "--val", str(tmp_path / "val.npz")])
    table = capsys.readouterr().out.strip().splitlines()[-5:]
    assert "val accuracy | test accuracy" in table[0]
    assert [row.split("|")[1].strip() for row in table[2:]] == ["1", "2", "3"]


def _cli_error(capsys, fn, argv):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys):
    msg = _cli_error(capsys, train_job.main, ["--set", "data.name=cifar100", "--set", f"data.root={tmp_path / 'none'}"])
    assert "CIFAR folder not found" in msg
    write_tiny_cifar(tmp_path / "c10", "cifar10")
    msg = _cli_error(capsys, train_job.main, ["--set", "data.name=cifar100", "--set", f"data.root={tmp_path / 'c10'}"])
    assert "not a CIFAR-100 folder" in msg
    assert "unknown loss 'focal'" in _cli_error(capsys, train_job.main, ["--set", "loss.name=focal"])
    assert "loss.lam: lambda must be >= 0" in _cli_error(
        capsys, train_job.main, ["--set", "loss.name=damping", "--set", "loss.lam=-0.5"])
    assert "checkpoint not found" in _cli_error(
        capsys, trace_job.main, ["--checkpoint", str(tmp_path / "x.pt"), "--split", "val", "--out", str(tmp_path / "t.npz")])


def test_traces_of_two_models_are_refused_together(tmp_path, capsys):
    for seed in (0, 1):
        res = train_job.train(_synthetic_cfg(tmp_path / f"m{seed}", "train.epochs=1", f"train.seed={seed}"),
                              log=lambda s: None)
        trace_job.trace_checkpoint(str(res.checkpoint), "test" if seed else "val", str(tmp_path / f"t{seed}.npz"))
    msg = _cli_error(capsys, anytime.main, [str(tmp_path / "t1.npz"), "--val", str(tmp_path / "t0.npz")])
    assert "comes from another model" in msg


def test_train_module_runs_as_a_program(tmp_path):
    r = subprocess.run([sys.executable, "-m", "eexit_vision.train", "--set", "loss.name=nope"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "unknown loss 'nope'" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["sum_ce", "damping", "power_sqrt", "label_smoothing", "power_sqrt_dynamic"])
def test_digits_last_exit_reaches_97_percent(tmp_path, loss):
    sets = {"sum_ce": [], "damping": ["loss.lam=0.05"], "power_sqrt": ["loss.lam=0.05"],
            "label_smoothing": ["loss.smoothing=0.1"],
            "power_sqrt_dynamic": ["loss.lam=0.05", "loss.dynamic_weights=true"]}[loss]
    name = "power_sqrt" if loss == "power_sqrt_dynamic" else loss
    cfg = load_vision_config(REPO / "configs" / "vision_digits.yaml",
                             [f"loss.name={name}", *sets, f"train.out={tmp_path}", "train.progress=false",
                              "train.tensorboard=false"])
    res = train_job.train(cfg, log=lambda s: None)
    assert res.test_accuracy[-1] >= 0.97


def test_diverging_run_stops_with_one_clear_error(tmp_path, capsys):
    msg = _cli_error(capsys, train_job.main, [
        "--set", "data.name=synthetic", "--set", "data.samples=200", "--set", "model.width=4",
        "--set", "train.lr=1.0e+12", "--set", "train.epochs=1", "--set", f"train.out={tmp_path}",
        "--set", "train.progress=false", "--set", "train.tensorboard=false"])
    assert "training diverged" in msg and "train.lr" in msg
