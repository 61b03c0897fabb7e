"""FLOPs budget shared by everything that spends compute in one decision."""
from __future__ import annotations

import math

from dpv.errors import ConfigError


class Budget:
    """B = n_ref * FLOPs(deepest exit), or unlimited (total=None).

    Each evaluation charges the cumulative FLOPs of the exit it stopped at; `fraction` is the
    thesis's r in [0, 1] (eq. 6.5)."""

    __slots__ = ("total", "spent")

    def __init__(self, total: float | None = None):
        if total is not None and not total > 0:
            raise ConfigError(f"budget must be > 0 FLOPs, got {total}")
        self.total = total
        self.spent = 0.0

    @classmethod
    def from_n_ref(cls, n_ref: int, deepest_flops: float) -> "Budget":
        if n_ref <= 0:
            raise ConfigError(f"n_ref must be > 0, got {n_ref}")
        return cls(n_ref * deepest_flops)

    @property
    def limited(self) -> bool:
        return self.total is not None

    @property
    def remaining(self) -> float:
        return math.inf if self.total is None else self.total - self.spent

    @property
    def fraction(self) -> float:
        return 0.0 if self.total is None else min(1.0, self.spent / self.total)

    def can_afford(self, flops: float) -> bool:
        return self.total is None or self.spent + flops <= self.total * (1 + 1e-12)

    def charge(self, flops: float) -> None:
        self.spent += float(flops)

    def reset(self) -> None:
        self.spent = 0.0

    def __repr__(self) -> str:
        return f"Budget(total={self.total}, spent={self.spent})"
