"""Exit traces: per-exit logits, labels and cumulative FLOPs of one model on one split.

The input of every offline evaluation method. Stored as one `.npz` with keys
  logits (K, N, C) float32, labels (N,) int64, flops (K,) float64 cumulative cost of stopping
  at each exit, num_classes (), model_id () str, split () str.
`model_id` names the model (architecture + weights) so a validation and a test trace from
different models are refused.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import DPVError

KEYS = ("logits", "labels", "flops", "num_classes", "model_id", "split")


@dataclass
class Trace:
    logits: np.ndarray  # (K, N, C)
    labels: np.ndarray  # (N,)
    flops: np.ndarray  # (K,)
    num_classes: int
    model_id: str
    split: str = ""

    @property
    def num_exits(self) -> int:
        return self.logits.shape[0]

    @property
    def size(self) -> int:
        return self.logits.shape[1]

    def __post_init__(self):
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.flops = np.asarray(self.flops, dtype=np.float64)
        k, n, c = self.logits.shape
        if self.labels.shape != (n,) or self.flops.shape != (k,) or c != self.num_classes:
            raise DPVError(f"trace shapes disagree: logits {self.logits.shape}, labels "
                           f"{self.labels.shape}, flops {self.flops.shape}, classes {self.num_classes}")


def save_trace(path: str | Path, trace: Trace) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, logits=trace.logits, labels=trace.labels, flops=trace.flops,
                        num_classes=np.int64(trace.num_classes), model_id=np.str_(trace.model_id),
                        split=np.str_(trace.split))
    atomic_write_bytes(path, buf.getvalue())


def load_trace(path: str | Path) -> Trace:
    p = Path(path)
    if not p.is_file():
        raise DPVError(f"trace file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DPVError(f"trace file {p} is not an exit trace (missing {', '.join(missing)})")
            return Trace(z["logits"], z["labels"], z["flops"], int(z["num_classes"]),
                         str(z["model_id"]), str(z["split"]))
    except DPVError:
        raise
    except Exception as e:
        raise DPVError(f"trace file {p} is unreadable ({type(e).__name__})") from None


def check_same_model(a: Trace, b: Trace, what_a: str = "validation", what_b: str = "test") -> None:
    if a.model_id != b.model_id or a.num_exits != b.num_exits or a.num_classes != b.num_classes \
            or not np.allclose(a.flops, b.flops):
        raise DPVError(f"the {what_b} trace comes from another model than the {what_a} trace "
                       f"({b.model_id!r} vs {a.model_id!r})")
