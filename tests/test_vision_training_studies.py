"""Study helpers: the Table 4.7-style tables and the ASTI regulariser's effect on norms."""
import numpy as np
import pytest

from dpv.errors import DPVError
from eexit_vision.asti_norms import residual_norms
from eexit_vision.checkpoints import load_classifier_payload
from eexit_vision.config import load_vision_config
from eexit_vision.datasets import load_dataset
from eexit_vision.loss_study import parse_variant, tables
from eexit_vision.train import train


def test_tables_report_mean_std_and_paired_differences():
    results = {"seeds": [0, 1], "flops": [1.0, 2.0], "variants": {
        "sum_ce": {"test_acc": [[0.90, 0.95], [0.80, 0.85]], "damping": [None, None]},
        "damping": {"test_acc": [[0.91, 0.95], [0.83, 0.86]], "damping": [[0.1, 0.3], [0.2, 0.4]]},
    }}
    md = tables(results)
    # sum_ce exit 1: mean 85, sample std 7.07; damping - sum_ce exit 1: diffs 1 and 3 -> 2 +- 1.41
    assert "| sum_ce | 85.00 ± 7.07 | 90.00 ± 7.07 |" in md
    assert "| damping | 2.00 ± 1.41 | 0.50 ± 0.71 |" in md
    assert "| damping | 0.1500 | 0.3500 |" in md


def test_variant_spec_parsing():
    assert parse_variant("d=loss.name=damping,loss.lam=0.025") == ("d", ["loss.name=damping", "loss.lam=0.025"])
    with pytest.raises(DPVError, match="must look like"):
        parse_variant("damping")


def test_depth_regulariser_lowers_later_layer_residual_norms(tmp_path):
    data_cfg = {"name": "synthetic", "samples": 400, "difficulty": 0.5, "side": 6}
    norms = {}
    for lam in (0.0, 0.01):
        cfg = load_vision_config({
            "data": data_cfg, "model": {"name": "asti_resnet", "width": 4, "blocks": 4},
            "loss": {"name": "asti", "lam": lam, "p": 2.0},
            "train": {"epochs": 3, "batch_size": 32, "out": str(tmp_path / str(lam)),
                      "progress": False, "tensorboard": False}})
        res = train(cfg, log=lambda s: None)
        net = load_classifier_payload(res.checkpoint)[0]
        norms[lam] = residual_norms(net, load_dataset(cfg.data).split("test"))
    assert (norms[0.01][1:] < norms[0.0][1:]).all()
    assert norms[0.01][-1] < 0.5 * norms[0.0][-1]
