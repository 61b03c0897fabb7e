"""Fashion-MNIST from the IDX files Debian's `dataset-fashion-mnist` installs (no download).

IDX layout (LeCun's MNIST format): a big-endian header `0 0 dtype ndim`, then `ndim` big-endian
uint32 sizes, then the data. Fashion-MNIST uses dtype 0x08 (uint8): images `(N, 28, 28)`,
labels `(N,)`. Files may be gzipped (`.gz`, as Debian ships them) or plain.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import DPVError

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SIZES = {"train": 60000, "test": 10000}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
# mean and std of the training pixels scaled to [0, 1] (the commonly quoted values)
MEAN, STD = 0.2860, 0.3530
UINT8 = 0x08


def _bad(path: Path, what: str) -> DPVError:
    return DPVError(f"Fashion-MNIST file {path} {what} ({INSTALL_HINT})")


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Bytes of one uint8 IDX file -> array of its declared shape; a short or malformed file
    is one error naming the path (a truncated copy must not become a smaller dataset)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise _bad(path, "is not an IDX file (bad magic number)")
    if raw[2] != UINT8:
        raise _bad(path, f"holds IDX type 0x{raw[2]:02x}, expected uint8 (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _bad(path, "is truncated (header incomplete)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    got = len(raw) - header
    if got != expected:
        kind = "is truncated" if got < expected else "has trailing bytes"
        raise _bad(path, f"{kind}: {got} data bytes for shape {shape} ({expected} expected)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a cut-off download or copy
        raise _bad(path, f"is truncated or not gzip ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise _bad(path, f"cannot be read ({e.strerror or e})") from None
    return parse_idx(raw, path)


def write_idx(path: str | Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzipped if `compress`): for tests and small fixtures."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, UINT8, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes() + a.tobytes()
    path = Path(path)
    atomic_write_bytes(path, gzip.compress(raw, mtime=0) if compress else raw)
    return path


def _locate(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise DPVError(f"Fashion-MNIST file not found: {root / (stem + '.gz')} ({INSTALL_HINT}, "
                   f"or set data.root to the folder holding the IDX files)")


def read_fashion_mnist(root: str | Path = DEBIAN_ROOT, full_size: bool = True):
    """-> ((x_train, y_train), (x_test, y_test)) as uint8 images (N, 28, 28) and int64 labels.

    `full_size` also checks the standard 60,000 / 10,000 counts (off for small test folders)."""
    root = Path(root or DEBIAN_ROOT)
    if not root.is_dir():
        raise DPVError(f"Fashion-MNIST folder not found: {root} ({INSTALL_HINT}, "
                       f"or set data.root to the folder holding the IDX files)")
    out = []
    for split, (img_stem, lab_stem) in FILES.items():
        img_path, lab_path = _locate(root, img_stem), _locate(root, lab_stem)
        x, y = read_idx(img_path), read_idx(lab_path)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise _bad(img_path, f"holds shape {x.shape}, expected (N, 28, 28) images")
        if y.ndim != 1 or len(y) != len(x):
            raise _bad(lab_path, f"holds {y.shape} labels for {len(x)} images")
        if full_size and len(x) != SIZES[split]:
            raise _bad(img_path, f"holds {len(x)} images, the {split} set has {SIZES[split]}")
        if y.size and int(y.max()) >= len(CLASSES):
            raise _bad(lab_path, f"has label {int(y.max())}, outside 0..{len(CLASSES) - 1}")
        out.append((x, y.astype(np.int64)))
    return out[0], out[1]


def write_tiny_fashion_mnist(root: str | Path, train: int = 60, test: int = 20, seed: int = 0) -> Path:
    """A small random dataset in the real IDX layout (gzipped), for tests and smoke runs."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        img_stem, lab_stem = FILES[split]
        write_idx(root / (img_stem + ".gz"), rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        write_idx(root / (lab_stem + ".gz"), rng.integers(0, len(CLASSES), size=n, dtype=np.uint8))
    return root
