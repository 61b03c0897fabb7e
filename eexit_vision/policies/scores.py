"""Confidence scores of one exit's output, shared by the threshold-style policies."""
from __future__ import annotations

import numpy as np

from dpv.exits import entropy, masked_softmax


def max_prob(probs: np.ndarray) -> np.ndarray:
    return probs.max(axis=-1)


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability ("breaking ties", EERO Remark 3.4)."""
    top2 = np.partition(probs, -2, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def neg_entropy(probs: np.ndarray) -> np.ndarray:
    return -entropy(probs)


SCORES = {"max_prob": max_prob, "margin": margin, "neg_entropy": neg_entropy}


def score(name: str, logits: np.ndarray, legal_mask: np.ndarray | None = None) -> np.ndarray:
    return SCORES[name](masked_softmax(logits, legal_mask))


def tie_break(logits: np.ndarray, u: float) -> np.ndarray:
    """A deterministic stand-in for EERO's uniform noise on [0, u]: a hash of the row's logits.

    EERO adds noise so that scores have no atoms and a quantile splits the data exactly; a
    hash instead of an RNG keeps the decision a function of the row, so the same policy object
    decides the same online and offline, in any batch order."""
    z = np.asarray(logits, dtype=np.float32).astype(np.float64)
    w = np.sin(np.arange(1, z.shape[-1] + 1) * 12.9898)
    h = np.sin(z @ w + z.sum(axis=-1) * 78.233) * 43758.5453
    return u * (h - np.floor(h))
