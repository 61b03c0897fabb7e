"""Datasets for the vision jobs, as in-memory tensors split by a fixed seed.

digits: scikit-learn's bundled 8x8 digits (no download). fashion_mnist: the IDX files of Debian's
`dataset-fashion-mnist` (eexit_vision.fashion_mnist). CIFAR-10/100: a local folder in the
original python-pickle layout (`cifar-10-batches-py/`, `cifar-100-python/`), never downloaded.
synthetic: a Gaussian mixture whose difficulty is the noise level.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dpv.errors import DPVError

from eexit_vision.config import DataConfig
from eexit_vision import fashion_mnist

SPLITS = ("train", "val", "test")

# per-channel statistics of the CIFAR training sets (standard values)
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) float32, normalised
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return self.y.shape[0]


@dataclass
class Dataset:
    name: str
    splits: dict[str, Split]
    num_classes: int
    augment: bool  # the training job applies crop + flip to training batches

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.splits["train"].x.shape[1:])

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DPVError(f"unknown split {name!r} (known: {', '.join(SPLITS)})")
        return self.splits[name]


def load_dataset(cfg: DataConfig) -> Dataset:
    if cfg.name == "digits":
        x, y, classes = _digits()
        splits = _three_way(x, y, cfg)
    elif cfg.name == "synthetic":
        x, y = gaussian_mixture(cfg.num_classes, cfg.side, cfg.samples, cfg.difficulty, cfg.seed)
        classes = cfg.num_classes
        splits = _three_way(x, y, cfg)
    else:
        if cfg.name == "fashion_mnist":
            (xtr, ytr), (xte, yte), classes = _fashion(cfg.root)
        else:
            (xtr, ytr), (xte, yte), classes = read_cifar(cfg.root, cfg.name)
        # validation comes out of the training set, by the fixed data.seed; test stays the test set
        train, val = _two_way(xtr, ytr, cfg.val_fraction, cfg.seed)
        splits = {"train": train, "val": val, "test": Split(xte, yte)}
    if cfg.limit:
        splits = {k: Split(s.x[: cfg.limit], s.y[: cfg.limit]) for k, s in splits.items()}
    return Dataset(cfg.name, splits, classes, augment=cfg.augment and cfg.name.startswith("cifar"))


# ---------------------------------------------------------------- sources

def _digits() -> tuple[torch.Tensor, torch.Tensor, int]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    x = (x - 0.3) / 0.4  # roughly zero mean, unit spread
    return x, torch.tensor(d.target, dtype=torch.long), 10


def _fashion(root: str):
    """Debian's IDX files -> normalised (N, 1, 28, 28) tensors; small folders (tests) allowed."""
    (xtr, ytr), (xte, yte) = fashion_mnist.read_fashion_mnist(root or fashion_mnist.DEBIAN_ROOT,
                                                              full_size=False)

    def norm(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x.copy()).unsqueeze(1).float() / 255.0
        return (t - fashion_mnist.MEAN) / fashion_mnist.STD

    return (norm(xtr), torch.from_numpy(ytr)), (norm(xte), torch.from_numpy(yte)), len(fashion_mnist.CLASSES)


def gaussian_mixture(num_classes: int, side: int, samples: int, difficulty: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means about distance 1 apart; isotropic noise of std `difficulty / 2` per coordinate,
    so at difficulty 1 two neighbouring classes overlap like Gaussians one std from the midpoint."""
    rng = np.random.default_rng(seed)
    dim = side * side
    # means ~ N(0, I/dim * 0.5) -> expected distance between two means ~ 1
    means = rng.normal(0.0, np.sqrt(0.5 / dim), size=(num_classes, dim))
    y = rng.integers(0, num_classes, size=samples)
    x = means[y] + rng.normal(0.0, difficulty / 2, size=(samples, dim))
    x = (x - x.mean()) / x.std()
    return (torch.tensor(x, dtype=torch.float32).view(samples, 1, side, side),
            torch.tensor(y, dtype=torch.long))


def read_cifar(root: str | Path, name: str):
    """Read CIFAR-10/100 from the python-pickle layout; `root` is the layout folder or its parent."""
    folder_name, train_files, test_files, label_key, classes = CIFAR_LAYOUT[name]
    root = Path(root)
    if not root.exists():
        raise DPVError(f"CIFAR folder not found: {root}")
    folder = root if root.name == folder_name else root / folder_name
    wanted = train_files + test_files
    missing = [f for f in wanted if not (folder / f).is_file()]
    if missing:
        raise DPVError(f"{root} is not a {name.upper().replace('CIFAR', 'CIFAR-')} folder in the "
                       f"python-pickle layout: expected {folder_name}/{missing[0]}")

    def read(files):
        xs, ys = [], []
        for f in files:
            try:
                with open(folder / f, "rb") as fh:
                    d = pickle.load(fh, encoding="bytes")
                data = np.asarray(d[b"data"], dtype=np.uint8)
                labels = np.asarray(d[label_key], dtype=np.int64)
            except Exception as e:  # wrong pickle, wrong keys: one line naming the file
                raise DPVError(f"{folder / f} is not a {name} pickle batch ({type(e).__name__}: {e})") from None
            if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise DPVError(f"{folder / f}: expected data (N, 3072) and N labels, got "
                               f"{data.shape} and {len(labels)}")
            if labels.size and (labels.min() < 0 or labels.max() >= classes):
                raise DPVError(f"{folder / f}: labels outside 0..{classes - 1} (is this {name}?)")
            xs.append(data)
            ys.append(labels)
        x = torch.tensor(np.concatenate(xs)).view(-1, 3, 32, 32).float() / 255.0
        mean = torch.tensor(CIFAR_MEAN[name]).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD[name]).view(1, 3, 1, 1)
        return (x - mean) / std, torch.tensor(np.concatenate(ys))

    return read(train_files), read(test_files), classes


def write_tiny_cifar(root: str | Path, name: str, train: int = 40, test: int = 20, seed: int = 0) -> Path:
    """Write a small random dataset in the real CIFAR pickle layout (for tests and smoke runs)."""
    folder_name, train_files, test_files, label_key, classes = CIFAR_LAYOUT[name]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_file = {f: max(1, train // len(train_files)) for f in train_files}
    per_file.update({f: test for f in test_files})
    for f, n in per_file.items():
        d = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, size=n).tolist()}
        with open(folder / f, "wb") as fh:
            pickle.dump(d, fh)
    return folder


# ---------------------------------------------------------------- splits

def _perm(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _three_way(x, y, cfg: DataConfig) -> dict[str, Split]:
    idx = _perm(len(y), cfg.seed)
    n_test = int(round(cfg.test_fraction * len(y)))
    n_val = int(round(cfg.val_fraction * len(y)))
    te, va, tr = idx[:n_test], idx[n_test:n_test + n_val], idx[n_test + n_val:]
    return {"train": Split(x[tr], y[tr]), "val": Split(x[va], y[va]), "test": Split(x[te], y[te])}


def _two_way(x, y, val_fraction: float, seed: int) -> tuple[Split, Split]:
    idx = _perm(len(y), seed)
    n_val = max(1, int(round(val_fraction * len(y))))
    return Split(x[idx[n_val:]], y[idx[n_val:]]), Split(x[idx[:n_val]], y[idx[:n_val]])


# ---------------------------------------------------------------- augmentation

def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: random crop from a zero-padded image + h-flip."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None],
                 torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    return torch.where(flip[:, None, None, None], out.flip(3), out)
