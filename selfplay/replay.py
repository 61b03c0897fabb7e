"""Replay buffer: a bounded ring of (planes, search policy, outcome) positions, with the
auxiliary targets where the game gives them (final ownership of each point and the score
margin, both from the mover's view; KataGo).

Planes are stored as uint8 (every plane the game adapters produce is 0/1), so a 9x9 Go
position costs 17*81 + 4*82 + 8 bytes + 81 + 5 for the aux targets, about 1.8 kB: the memory bound is
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

# 2: ownership, has_ownership and score per position. A format-1 file (no aux targets) is
# converted on load: its positions carry no ownership and an unknown score (no aux loss).
BUFFER_FORMAT = 2


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
    # (T, H, W) int8 final owner of each point, +1 = that move's mover; None = not known
    # (a game without territory, or one that ended by resignation)
    ownership: np.ndarray | None = None
    # (T,) float32 final margin in points from each mover's view; None or NaN = not known
    score: np.ndarray | None = None

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
    ownership: np.ndarray | None = None  # (B, H*W) float32 in {-1, 0, 1}, the mover's view
    has_ownership: np.ndarray | None = None  # (B,) float32: 1 where ownership is a target
    score: np.ndarray | None = None  # (B,) float32 margin in points, the mover's view (0 where unknown)
    has_score: np.ndarray | None = None  # (B,) float32: 1 where score is a target


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
        self.ownership = np.zeros((self.capacity,) + self.obs_shape[1:], dtype=np.int8)
        self.has_ownership = np.zeros(self.capacity, dtype=bool)
        self.score = np.full(self.capacity, np.nan, dtype=np.float32)
        self.size = 0
        self.next = 0  # ring write position
        self.added = 0  # positions ever written (counts symmetric copies under "write")

    @property
    def position_bytes(self) -> int:
        return int(np.prod(self.obs_shape)) + 4 * self.num_actions + 8 + int(np.prod(self.obs_shape[1:])) + 5

    @property
    def nbytes(self) -> int:
        return (self.planes.nbytes + self.policies.nbytes + self.values.nbytes
                + self.policy_weights.nbytes + self.ownership.nbytes + self.has_ownership.nbytes
                + self.score.nbytes)

    def __len__(self) -> int:
        return self.size

    def add_game(self, game: SelfPlayGame) -> None:
        planes, policies, values = game.planes, game.policies, game.values
        weights = game.weights()
        ownership, score = game.ownership, game.score
        if self.symmetries == "write":
            syms = range(self.game.num_symmetries)
            planes = np.concatenate([self._planes_sym(planes, s) for s in syms])
            policies = np.concatenate([self.game.transform_policy(policies, s) for s in syms])
            values = np.concatenate([values] * len(syms))
            weights = np.concatenate([weights] * len(syms))
            if ownership is not None:
                ownership = np.concatenate([self.game.transform_planes(ownership, s) for s in syms])
            if score is not None:
                score = np.concatenate([score] * len(syms))
        self.add(planes, policies, values, weights, ownership, score)

    def add(self, planes: np.ndarray, policies: np.ndarray, values: np.ndarray,
            policy_weights: np.ndarray | None = None, ownership: np.ndarray | None = None,
            score: np.ndarray | None = None, has_ownership: np.ndarray | None = None) -> None:
        """Rows in; ownership None = not known for these rows (or per row: `has_ownership`),
        score None or NaN = not known."""
        n = len(values)
        if policy_weights is None:
            policy_weights = np.ones(n, dtype=np.float32)
        if has_ownership is None:
            has_ownership = np.full(n, ownership is not None)
        if ownership is None:
            ownership = np.zeros((n,) + self.obs_shape[1:], dtype=np.int8)
        if score is None:
            score = np.full(n, np.nan, dtype=np.float32)
        if n > self.capacity:  # only the newest fit
            planes, policies, values = planes[-self.capacity:], policies[-self.capacity:], values[-self.capacity:]
            policy_weights = policy_weights[-self.capacity:]
            ownership, has_ownership = ownership[-self.capacity:], has_ownership[-self.capacity:]
            score = score[-self.capacity:]
            self.added += n - self.capacity
            n = self.capacity
        idx = (self.next + np.arange(n)) % self.capacity
        self.planes[idx] = planes
        self.policies[idx] = policies
        self.values[idx] = values
        self.policy_weights[idx] = policy_weights
        self.ownership[idx] = ownership
        self.has_ownership[idx] = has_ownership
        self.score[idx] = score
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.added += n

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        planes = self.planes[idx].astype(np.float32)
        policies = self.policies[idx].copy()
        ownership = self.ownership[idx].astype(np.float32)
        if self.symmetries == "sample":
            syms = rng.integers(0, self.game.num_symmetries, size=batch_size)
            for s in np.unique(syms):
                if s == 0:
                    continue
                rows = syms == s
                planes[rows] = self._planes_sym(planes[rows], int(s))
                policies[rows] = self.game.transform_policy(policies[rows], int(s))
                ownership[rows] = self._planes_sym(ownership[rows], int(s))
        score = self.score[idx]
        known = ~np.isnan(score)
        return Batch(planes, policies, self.values[idx].copy(), self.policy_weights[idx].copy(),
                     ownership.reshape(batch_size, -1), self.has_ownership[idx].astype(np.float32),
                     np.where(known, score, 0.0).astype(np.float32), known.astype(np.float32))

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
                 ownership=self.ownership[order], has_ownership=self.has_ownership[order],
                 score=self.score[order], added=self.added)
        return buf.getvalue()

    def save(self, path) -> None:
        atomic_write_bytes(path, self.to_bytes())

    def load(self, path) -> None:
        try:
            with np.load(path) as z:
                fmt = int(z["format"])
                if fmt not in (1, BUFFER_FORMAT):
                    raise CheckpointError(f"replay buffer {path} has format {fmt}, this package reads "
                                          f"1 and {BUFFER_FORMAT}; resume it with the dpv that wrote it")
                planes, policies, values, added = z["planes"], z["policies"], z["values"], int(z["added"])
                # files written before playout caps hold full searches only
                weights = z["policy_weights"] if "policy_weights" in z.files else None
                # format 1 is converted: no aux targets (ownership unknown, score NaN)
                ownership = z["ownership"] if fmt >= 2 else None
                has_ownership = z["has_ownership"] if fmt >= 2 else None
                score = z["score"] if fmt >= 2 else None
        except CheckpointError:
            raise
        except FileNotFoundError:
            raise CheckpointError(f"replay buffer not found: {path}") from None
        except Exception as e:  # zip/pickle/key errors from a torn or foreign file
            raise CorruptReplay(path, type(e).__name__) from None
        if planes.shape[1:] != self.obs_shape or policies.shape[1:] != (self.num_actions,):
            raise CheckpointError(f"replay buffer {path} holds positions of shape {planes.shape[1:]}, "
                                  f"this run's game has {self.obs_shape}")
        if ownership is not None and ownership.shape[1:] != self.obs_shape[1:]:
            raise CorruptReplay(path, f"ownership of shape {ownership.shape[1:]}")
        self.size = self.next = 0
        self.add(planes, policies, values, weights, ownership, score, has_ownership)
        self.added = added
