"""Combiners: which answer to give from the exits computed so far (thesis ch. 5).

A combiner maps the logits of exits 0..k (a list of (B, C) arrays, as in `ExitContext.logits`)
to class scores (B, C); the answer is their argmax. It does not decide when to stop: pair it
with any exit policy. Combiners that need statistics are fitted on a validation trace.

  LastExit           the usual answer: exit k alone.
  LogitVoting        O = sum_c w_c * theta_c over full logit vectors (eq. in 5.3.5); weights
                     equal, by validation accuracy, or by FLOPs. `softmax=True` votes with
                     probabilities instead (the thesis's weaker variant, Table 5.4).
  BayesianUpdating   posterior over labels, prior uniform, updated exit by exit with the
                     likelihood P(theta_c | l) read from the validation confusion matrix
                     (eq. 5.2); theta_c = argmax of exit c. `first_exit` says what answers
                     after exit 1 alone: "raw" (default) its own softmax, as every Bayes row of
                     Tables 5.1-5.4 has it (exit 1 equals the raw exit, oracle rows included);
                     "posterior" the uniform prior x likelihood, as Fig 5.2 computes it. From
                     exit 2 on both are the posterior over every exit seen, exit 1 included.
  ConformalBayes     the same with theta_c = (argmax, confidence bin), bins >90%, 80-90%,
                     <80% of the max softmax (5.3.4), so confident and unsure outputs of the
                     same label get their own likelihoods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from dpv.errors import DPVError
from dpv.exits import masked_softmax
from eexit_vision.traces import Trace


class Combiner(Protocol):
    name: str

    def combine(self, logits: Sequence[np.ndarray]) -> np.ndarray: ...  # (B, C) scores


def predict(combiner: Combiner, logits: Sequence[np.ndarray]) -> np.ndarray:
    return np.asarray(combiner.combine(logits)).argmax(axis=-1)


def anytime_predictions(combiner: Combiner, logits: np.ndarray) -> np.ndarray:
    """(K, N) predictions of `combiner` after exits 0..k, for every k (the anytime setting)."""
    return np.stack([predict(combiner, list(logits[: k + 1])) for k in range(len(logits))])


@dataclass(frozen=True)
class LastExit:
    name: str = "last exit"

    def combine(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(logits[-1], dtype=np.float64)


@dataclass(frozen=True)
class LogitVoting:
    """O = sum_c w_c theta_c over the exits computed so far (all weights 1 by default)."""

    weights: tuple[float, ...] | None = None
    softmax: bool = False
    name: str = "logit voting"

    def combine(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        w = np.ones(len(logits)) if self.weights is None else np.asarray(self.weights[: len(logits)])
        if len(w) < len(logits):
            raise DPVError(f"{self.name}: {len(self.weights)} weights for {len(logits)} exits")
        votes = [masked_softmax(l) if self.softmax else np.asarray(l, dtype=np.float64) for l in logits]
        return sum(wc * v for wc, v in zip(w, votes))

    @classmethod
    def by_accuracy(cls, val: Trace) -> "LogitVoting":
        """Weights = each exit's validation accuracy: weak exits count less."""
        acc = (val.logits.argmax(-1) == val.labels[None]).mean(axis=1)
        return cls(tuple(float(a) for a in acc), name="acc-weighted voting")

    @classmethod
    def by_flops(cls, val: Trace) -> "LogitVoting":
        """Weights = FLOPs relative to the last exit: deeper exits count more."""
        return cls(tuple(float(f) for f in val.flops / val.flops[-1]), name="flops-weighted voting")


def confusion_counts(preds: np.ndarray, labels: np.ndarray, num_outputs: int, num_classes: int) -> np.ndarray:
    """(num_classes, num_outputs) counts of (true label, observed output)."""
    counts = np.zeros((num_classes, num_outputs), dtype=np.float64)
    np.add.at(counts, (labels, preds), 1.0)
    return counts


def likelihood_from_counts(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """P(output | true label), rows normalised; additive smoothing keeps an output never seen
    with some label from zeroing that label's posterior for good."""
    c = counts + smoothing
    return c / c.sum(axis=1, keepdims=True)


FIRST_EXIT = ("raw", "posterior")


def bayes_update(prior: np.ndarray, likelihood_of_observed: np.ndarray) -> np.ndarray:
    """Posterior ∝ P(theta | l) * prior (eq. 5.2); P(theta) is the normaliser."""
    post = prior * likelihood_of_observed
    return post / post.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class BayesianUpdating:
    """Likelihood tables per exit: likelihood[c][l, o] = P(output o of exit c | label l)."""

    likelihood: tuple[np.ndarray, ...]
    name: str = "Bayes"
    first_exit: str = "raw"  # raw | posterior: the answer after exit 1 alone (module docstring)

    def __post_init__(self):
        if self.first_exit not in FIRST_EXIT:
            raise DPVError(f"{self.name}: first_exit must be one of {', '.join(FIRST_EXIT)}, got {self.first_exit!r}")

    def outputs(self, k: int, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits).argmax(axis=-1)

    def combine(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        if len(logits) > len(self.likelihood):
            raise DPVError(f"{self.name}: fitted for {len(self.likelihood)} exits, got {len(logits)}")
        if len(logits) == 1 and self.first_exit == "raw":
            return masked_softmax(logits[0])
        n, c = np.asarray(logits[0]).shape
        post = np.full((n, c), 1.0 / c)
        for k, l in enumerate(logits):
            post = bayes_update(post, self.likelihood[k][:, self.outputs(k, l)].T)
        return post

    @classmethod
    def fit(cls, val: Trace, smoothing: float = 1.0, name: str = "Bayes",
            first_exit: str = "raw") -> "BayesianUpdating":
        c = val.num_classes
        tables = tuple(likelihood_from_counts(confusion_counts(val.logits[k].argmax(-1), val.labels, c, c),
                                              smoothing) for k in range(val.num_exits))
        return cls(tables, name, first_exit)


DEFAULT_BIN_EDGES = (0.8, 0.9)  # max-softmax bins: <80%, 80-90%, >90% (thesis 5.3.4)


@dataclass(frozen=True)
class ConformalBayes(BayesianUpdating):
    """Outputs are (label, confidence bin): output index = label * num_bins + bin."""

    bin_edges: tuple[float, ...] = DEFAULT_BIN_EDGES
    name: str = "Bayes + CP"

    def outputs(self, k: int, logits: np.ndarray) -> np.ndarray:
        return conformal_outputs(logits, self.bin_edges)

    @classmethod
    def fit(cls, val: Trace, smoothing: float = 1.0, bin_edges: tuple[float, ...] = DEFAULT_BIN_EDGES,
            name: str = "Bayes + CP", first_exit: str = "raw") -> "ConformalBayes":
        c, nb = val.num_classes, len(bin_edges) + 1
        # the smoothing mass is spread over the bins so a label's total prior weight matches Bayes
        tables = tuple(likelihood_from_counts(
            confusion_counts(conformal_outputs(val.logits[k], bin_edges), val.labels, c * nb, c),
            smoothing / nb) for k in range(val.num_exits))
        return cls(tables, name, first_exit, bin_edges)


def conformal_outputs(logits: np.ndarray, bin_edges: Sequence[float]) -> np.ndarray:
    p = masked_softmax(logits)
    conf_bin = np.searchsorted(np.asarray(bin_edges), p.max(axis=-1), side="right")
    return p.argmax(axis=-1) * (len(bin_edges) + 1) + conf_bin


def standard_combiners(val: Trace) -> list[Combiner]:
    """The combiners of thesis Tables 5.1-5.4, fitted on a validation trace."""
    return [LastExit(), LogitVoting(), LogitVoting.by_accuracy(val), LogitVoting.by_flops(val),
            LogitVoting(softmax=True, name="softmax voting"),
            BayesianUpdating.fit(val), ConformalBayes.fit(val)]
