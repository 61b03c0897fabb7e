"""Datasets: fixed-seed splits, CIFAR pickle layout (tiny folders written here), augmentation."""
import pickle

import pytest
import torch

from dpv.errors import DPVError
from eexit_vision.config import DataConfig
from eexit_vision.datasets import crop_flip, load_dataset, read_cifar, write_tiny_cifar


def test_digits_splits_are_disjoint_and_fixed_by_seed():
    a = load_dataset(DataConfig(name="digits", seed=3))
    b = load_dataset(DataConfig(name="digits", seed=3))
    c = load_dataset(DataConfig(name="digits", seed=4))
    sizes = [len(a.split(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 1797 and a.num_classes == 10 and a.input_shape == (1, 8, 8)
    assert torch.equal(a.split("test").x, b.split("test").x)
    assert not torch.equal(a.split("test").x, c.split("test").x)
    rows = {s: {tuple(r.flatten().tolist()) for r in a.split(s).x} for s in ("train", "val", "test")}
    # digits has a few exact duplicate images; splits share no more than those
    assert len(rows["test"] & rows["train"]) < 10 and len(rows["val"] & rows["test"]) < 10


def test_synthetic_difficulty_controls_class_overlap():
    def nearest_mean_accuracy(difficulty):
        d = load_dataset(DataConfig(name="synthetic", difficulty=difficulty, samples=2000, seed=1))
        tr, te = d.split("train"), d.split("test")
        means = torch.stack([tr.x[tr.y == c].mean(0).flatten() for c in range(d.num_classes)])
        pred = torch.cdist(te.x.flatten(1), means).argmin(1)
        return (pred == te.y).float().mean().item()

    easy, hard = nearest_mean_accuracy(0.2), nearest_mean_accuracy(2.0)
    assert easy > 0.95 and hard < easy - 0.3


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_reads_tiny_cifar_folder_in_the_pickle_layout(tmp_path, name, classes):
    write_tiny_cifar(tmp_path, name, train=50, test=12)
    d = load_dataset(DataConfig(name=name, root=str(tmp_path), val_fraction=0.2))
    assert d.num_classes == classes and d.input_shape == (3, 32, 32) and d.augment
    assert len(d.split("test")) == 12 and len(d.split("train")) + len(d.split("val")) == 50
    # the layout folder itself is accepted as root too
    (xtr, _), _, _ = read_cifar(tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"), name)
    assert xtr.shape == (50, 3, 32, 32)


def test_missing_cifar_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DPVError, match="CIFAR folder not found: .*nowhere"):
        read_cifar(tmp_path / "nowhere", "cifar100")


def test_cifar_folder_in_another_layout_is_one_clear_error(tmp_path):
    write_tiny_cifar(tmp_path, "cifar10")  # a CIFAR-10 folder where CIFAR-100 is asked for
    with pytest.raises(DPVError, match=r"not a CIFAR-100 folder in the python-pickle layout: expected cifar-100-python/train"):
        read_cifar(tmp_path, "cifar100")
    # right file names, wrong contents (e.g. an image-folder export pickled differently)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for f in ("train", "test"):
        (folder / f).write_bytes(pickle.dumps({"images": [1, 2, 3]}))
    with pytest.raises(DPVError, match="is not a cifar100 pickle batch"):
        read_cifar(tmp_path, "cifar100")


def test_crop_flip_keeps_shape_and_content_shifted_by_at_most_the_padding():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    g = torch.Generator().manual_seed(0)
    outs = [crop_flip(x, g, pad=2) for _ in range(20)]
    assert all(o.shape == x.shape for o in outs)
    for o in outs:
        for b in range(2):
            vals = set(o[b].flatten().tolist()) - {0.0}
            assert vals <= set(x[b].flatten().tolist())  # only own pixels or zero padding
            assert len(vals) >= 3 * 6 * 6  # at most `pad` rows/cols lost per side
    assert any(not torch.equal(o, x) for o in outs)
