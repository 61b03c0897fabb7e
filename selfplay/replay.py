"""Replay buffer: a bounded ring of (planes, search policy, outcome) positions.

Planes are stored as uint8 (every plane the game adapters produce is 0/1), so a 9x9 Go
position costs 17*81 + 4*82 + 8 bytes, about 1.7 kB: the memory bound is
`capacity * position_bytes`, fixed at construction and never exceeded. Symmetries are applied
either at sampling (one random symmetry per sampled row: cheap to store) or at write (all of
them stored: a sample sees each augmentation with its own row).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import CheckpointError

BUFFER_FORMAT = 1


class CorruptReplay(CheckpointError):
    """A replay file that is torn or not a buffer at all (the run dir heals around it)."""

    def __init__(self, path, reason: str):
        super().__init__(f"replay buffer {path} is corrupt ({reason})")
        self.reason = reason


@dataclass
class SelfPlayGame:
    """One finished self-play game, as the learner needs it."""

    planes: np.ndarray  # (T, C, H, W) uint8, from the view of the player to move
    policies: np.ndarray  # (T, A) float32 search visit distributions
    values: np.ndarray  # (T,) float32 final result from the player-to-move's view
    exit_used: int = -1
    simulations: int = 0
    flops: float = 0.0
    # (T,) float32 weight of each move's policy target: 0 for a playout-capped fast search
    # (value target only), 1 for a full one; None = every move full
    policy_weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def weights(self) -> np.ndarray:
        if self.policy_weights is None:
            return np.ones(len(self.values), dtype=np.float32)
        return self.policy_weights


@dataclass
class Batch:
    planes: np.ndarray  # (B, C, H, W) float32
    policies: np.ndarray  # (B, A) float32
    values: np.ndarray  # (B,) float32
    policy_weights: np.ndarray | None = None  # (B,) float32, None = all 1


class ReplayBuffer:
    def __init__(self, capacity: int, obs_shape: tuple[int, int, int], num_actions: int,
                 game=None, symmetries: str = "sample"):
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.num_actions = int(num_actions)
        self.game = game  # needed for symmetries (transform_planes / transform_policy)
        self.symmetries = symmetries if game is not None and game.num_symmetries > 1 else "none"
        self.planes = np.zeros((self.capacity,) + self.obs_shape, dtype=np.uint8)
        self.policies = np.zeros((self.capacity, self.num_actions), dtype=np.float32)
        self.values = np.zeros(self.capacity, dtype=np.float32)
        self.policy_weights = np.ones(self.capacity, dtype=np.float32)
        self.size = 0
        self.next = 0  # ring write position
        self.added = 0  # positions ever written (counts symmetric copies under "write")

    @property
    def position_bytes(self) -> int:
        return int(np.prod(self.obs_shape)) + 4 * self.num_actions + 8

    @property
    def nbytes(self) -> int:
        return (self.planes.nbytes + self.policies.nbytes + self.values.nbytes
                + self.policy_weights.nbytes)

    def __len__(self) -> int:
        return self.size

    def add_game(self, game: SelfPlayGame) -> None:
        planes, policies, values = game.planes, game.policies, game.values
        weights = game.weights()
        if self.symmetries == "write":
            syms = range(self.game.num_symmetries)
            planes = np.concatenate([self._planes_sym(planes, s) for s in syms])
            policies = np.concatenate([self.game.transform_policy(policies, s) for s in syms])
            values = np.concatenate([values] * len(syms))
            weights = np.concatenate([weights] * len(syms))
        self.add(planes, policies, values, weights)

    def add(self, planes: np.ndarray, policies: np.ndarray, values: np.ndarray,
            policy_weights: np.ndarray | None = None) -> None:
        n = len(values)
        if policy_weights is None:
            policy_weights = np.ones(n, dtype=np.float32)
        if n > self.capacity:  # only the newest fit
            planes, policies, values = planes[-self.capacity:], policies[-self.capacity:], values[-self.capacity:]
            policy_weights = policy_weights[-self.capacity:]
            self.added += n - self.capacity
            n = self.capacity
        idx = (self.next + np.arange(n)) % self.capacity
        self.planes[idx] = planes
        self.policies[idx] = policies
        self.values[idx] = values
        self.policy_weights[idx] = policy_weights
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.added += n

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        planes = self.planes[idx].astype(np.float32)
        policies = self.policies[idx].copy()
        if self.symmetries == "sample":
            syms = rng.integers(0, self.game.num_symmetries, size=batch_size)
            for s in np.unique(syms):
                if s == 0:
                    continue
                rows = syms == s
                planes[rows] = self._planes_sym(planes[rows], int(s))
                policies[rows] = self.game.transform_policy(policies[rows], int(s))
        return Batch(planes, policies, self.values[idx].copy(), self.policy_weights[idx].copy())

    def _planes_sym(self, planes: np.ndarray, sym: int) -> np.ndarray:
        # transform_planes acts on (C, H, W) or a batch of them through the last two axes
        return np.ascontiguousarray(self.game.transform_planes(planes, sym))

    # ---- persistence: one .npz written atomically
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        n = self.size
        # store in age order (oldest first) so a reload with another capacity keeps the newest
        order = (self.next - n + np.arange(n)) % self.capacity
        np.savez(buf, format=BUFFER_FORMAT, planes=self.planes[order], policies=self.policies[order],
                 values=self.values[order], policy_weights=self.policy_weights[order],
                 added=self.added)
        return buf.getvalue()

    def save(self, path) -> None:
        atomic_write_bytes(path, self.to_bytes())

    def load(self, path) -> None:
        try:
            with np.load(path) as z:
                if int(z["format"]) != BUFFER_FORMAT:
                    raise CheckpointError(f"replay buffer {path} has format {int(z['format'])}, expected {BUFFER_FORMAT}")
                planes, policies, values, added = z["planes"], z["policies"], z["values"], int(z["added"])
                # files written before playout caps hold full searches only
                weights = z["policy_weights"] if "policy_weights" in z.files else None
        except CheckpointError:
            raise
        except FileNotFoundError:
            raise CheckpointError(f"replay buffer not found: {path}") from None
        except Exception as e:  # zip/pickle/key errors from a torn or foreign file
            raise CorruptReplay(path, type(e).__name__) from None
        if planes.shape[1:] != self.obs_shape or policies.shape[1:] != (self.num_actions,):
            raise CheckpointError(f"replay buffer {path} holds positions of shape {planes.shape[1:]}, "
                                  f"this run's game has {self.obs_shape}")
        self.size = self.next = 0
        self.add(planes, policies, values, weights)
        self.added = added
