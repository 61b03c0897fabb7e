"""Board symmetries acting on observation planes (..., H, W) and on policy vectors.

A symmetry is an index into `DIHEDRAL`: (k quarter turns, then optional transpose-flip).
Policy vectors over board points (+ optional trailing pass) are permuted the same way;
pass stays fixed.
"""
from __future__ import annotations

import numpy as np

# (rot90 count, flip left-right after rotation)
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))


def transform_planes(planes: np.ndarray, sym: int) -> np.ndarray:
    """Apply dihedral symmetry `sym` (0..7) to the last two axes."""
    k, flip = DIHEDRAL[sym]
    out = np.rot90(planes, k, axes=(-2, -1))
    if flip:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)


def inverse(sym: int) -> int:
    k, flip = DIHEDRAL[sym]
    # rotations invert to the opposite turn; rotate-then-flip is its own inverse
    return DIHEDRAL.index(((-k) % 4, False)) if not flip else sym


def point_permutation(height: int, width: int, sym: int) -> np.ndarray:
    """perm such that transformed_policy[perm[i]] = policy[i] for board point i."""
    idx = np.arange(height * width).reshape(height, width)
    moved = transform_planes(idx, sym)  # moved[y', x'] = original index landing at (y', x')
    perm = np.empty(height * width, dtype=np.int64)
    perm[moved.reshape(-1)] = np.arange(height * width)
    return perm


def transform_policy(policy: np.ndarray, height: int, width: int, sym: int) -> np.ndarray:
    """Permute a policy over H*W points (+ trailing extra actions such as pass, kept fixed)."""
    n = height * width
    perm = point_permutation(height, width, sym)
    out = np.array(policy, copy=True)
    out[..., perm] = policy[..., :n]
    return out
