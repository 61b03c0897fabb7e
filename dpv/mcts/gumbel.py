"""Gumbel root search (Danihelka et al., ICLR 2022, "Policy improvement by planning with
Gumbel"): the arithmetic and the root schedule, on plain arrays. `dpv.mcts.search` runs it
on its tree when `MCTSConfig.root` is "gumbel".

At the root, m actions are sampled without replacement by Gumbel-top-k (the m largest
g(a) + logits(a), g ~ Gumbel(0, gumbel_scale)); sequential halving then shares the search
among them in ceil(log2 m) equal phases, round-robin over the survivors within a phase, and
keeps the better half (at least two) by g + logits + sigma(completed Q) after each phase; the
action played is the best survivor. The policy target is softmax(logits + sigma(completed Q))
over every legal move. Below the root the deterministic rule picks
argmax pi'(a) - N(a) / (1 + sum_b N(b)), pi' = softmax(logits + sigma(completed Q)).

sigma(q) = (c_visit + max_b N(b)) * c_scale * q, with q mapped from the games' value range
[-1, 1] to [0, 1] (known bounds; mctx instead rescales min-max per node, which blows a tiny
Q difference up to the full range). Completed Q: a visited action's Q, an unvisited one's the
mixed value v_mix = (v_hat + sum N * sum_visited pi(b) q(b) / sum_visited pi(b)) / (1 + sum N)
(the paper's appendix D), v_hat the network's value of the node.

"Phases" share whatever the search counts: simulations, or FLOPs under a DPV budget, where a
phase's share is B' / phases of what was left when the root was expanded (B' cumulative: what
one phase leaves unspent, the next may use).
"""
from __future__ import annotations

import math

import numpy as np

TINY = np.finfo(np.float64).tiny


def normalised(q: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] (the player to move's view) mapped to [0, 1]."""
    return (np.asarray(q, dtype=np.float64) + 1.0) / 2.0


def sigma(q: np.ndarray, max_visits: float, c_visit: float, c_scale: float) -> np.ndarray:
    """The paper's monotone transform of (completed) Q values in [-1, 1]."""
    return (c_visit + max_visits) * c_scale * normalised(q)


def mixed_value(raw_value: float, prior: np.ndarray, q: np.ndarray, visits: np.ndarray) -> float:
    """v_mix: the network's value v_hat blended with the prior-weighted Q of visited actions."""
    seen = visits > 0
    if not seen.any():
        return float(raw_value)
    n = float(visits.sum())
    p = np.maximum(prior[seen], TINY)  # a visited action with zero prior still counts
    weighted = float(p @ q[seen] / p.sum())
    return (float(raw_value) + n * weighted) / (1.0 + n)


def completed_q(raw_value: float, prior: np.ndarray, q: np.ndarray,
                visits: np.ndarray) -> np.ndarray:
    """Q of visited actions; v_mix in place of the unvisited ones."""
    return np.where(visits > 0, q, mixed_value(raw_value, prior, q, visits))


def logits_of(prior: np.ndarray) -> np.ndarray:
    """Logits whose softmax is `prior` (the tree keeps priors normalised over legal moves)."""
    return np.log(np.maximum(prior, TINY))


def improved_logits(prior: np.ndarray, q: np.ndarray, visits: np.ndarray, raw_value: float,
                    c_visit: float, c_scale: float) -> np.ndarray:
    """logits + sigma(completed Q), over a node's children."""
    visits = np.asarray(visits, dtype=np.float64)
    cq = completed_q(raw_value, prior, q, visits)
    return logits_of(prior) + sigma(cq, float(visits.max(initial=0.0)), c_visit, c_scale)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def improved_policy(prior: np.ndarray, q: np.ndarray, visits: np.ndarray, raw_value: float,
                    c_visit: float, c_scale: float) -> np.ndarray:
    """The policy target: softmax(logits + sigma(completed Q))."""
    return softmax(improved_logits(prior, q, visits, raw_value, c_visit, c_scale))


SMALL = 24  # up to this many children, plain Python beats numpy's per-call cost


def interior_choice(prior: np.ndarray, q: np.ndarray, visits: np.ndarray, raw_value: float,
                    c_visit: float, c_scale: float) -> int:
    """Below the root: argmax pi'(a) - N(a) / (1 + sum N), so that visit shares track pi'.

    The same pi' as `improved_policy`, in fewer operations (this runs at every node of every
    simulation): softmax(log p + sigma(cq)) = p * exp(k * cq) / Z with k = (c_visit +
    max N) * c_scale / 2, since sigma's shift of the value range is a constant."""
    if len(prior) <= SMALL:
        return _interior_choice_small(prior.tolist(), q.tolist(), visits.tolist(), raw_value,
                                      c_visit, c_scale)
    n = float(visits.sum())
    if n == 0.0:  # every Q completed by v_hat: pi' is the prior
        return int(np.argmax(prior))
    seen = visits > 0
    p_seen = np.where(seen, np.maximum(prior, TINY), 0.0)
    v_mix = (raw_value + n * float(p_seen @ np.where(seen, q, 0.0)) / float(p_seen.sum())) / (1.0 + n)
    cq = np.where(seen, q, v_mix)
    w = prior * np.exp((c_visit + float(visits.max())) * c_scale * 0.5 * (cq - cq.max()))
    return int(np.argmax(w / w.sum() - visits / (1.0 + n)))


def _interior_choice_small(prior: list[float], q: list[float], visits: list[float],
                           raw_value: float, c_visit: float, c_scale: float) -> int:
    """`interior_choice` over a few children, on lists (ties: the first, as np.argmax)."""
    n = sum(visits)
    if n == 0.0:
        return max(range(len(prior)), key=prior.__getitem__)
    p_sum = pq = top_n = 0.0
    for p, qa, na in zip(prior, q, visits):
        if na > 0:
            p = p if p > TINY else TINY
            p_sum += p
            pq += p * qa
            if na > top_n:
                top_n = na
    v_mix = (raw_value + n * pq / p_sum) / (1.0 + n)
    cq = [qa if na > 0 else v_mix for qa, na in zip(q, visits)]
    top = max(cq)
    k = (c_visit + top_n) * c_scale * 0.5
    w = [p * math.exp(k * (c - top)) for p, c in zip(prior, cq)]
    z = sum(w)
    d = 1.0 + n
    best, choice = -math.inf, 0
    for i, (wa, na) in enumerate(zip(w, visits)):
        score = wa / z - na / d
        if score > best:
            best, choice = score, i
    return choice


def phases_for(m: int) -> int:
    """Sequential halving's phase count for m sampled actions: ceil(log2 m), at least 1."""
    return max(1, math.ceil(math.log2(m))) if m > 1 else 1


class SequentialHalving:
    """Which root child the next simulation visits, and where the current phase ends.

    Children are local indices 0..n-1 of the root's children. The halving shares out
    `sims_total` simulations and, under a budget, `flops_total` FLOPs (both counted from
    what the search had spent when it started: `sims_start`, `flops_start`); under a budget
    the simulation count only bounds visits to terminal children, which cost no FLOPs."""

    def __init__(self, gumbel: np.ndarray, logits: np.ndarray, m: int, sims_total: int,
                 flops_total: float = 0.0, sims_start: int = 0, flops_start: float = 0.0):
        self.gumbel = np.asarray(gumbel, dtype=np.float64)
        m = max(1, min(int(m), len(self.gumbel)))
        # Gumbel-top-k: the m largest g + logits, a sample without replacement from softmax
        order = np.argsort(-(self.gumbel + logits), kind="stable")
        self.survivors: list[int] = [int(i) for i in order[:m]]
        self.phases = phases_for(m)
        self.phase = 0
        self.sims_total, self.sims_start = int(sims_total), int(sims_start)
        self.flops_total, self.flops_start = float(flops_total), float(flops_start)
        self._turn = 0

    @property
    def last_phase(self) -> bool:
        return self.phase >= self.phases - 1

    def _end(self, total: float) -> float:
        """Cumulative end of the current phase's share of `total` (the last phase: all)."""
        return total if self.last_phase else total * (self.phase + 1) / self.phases

    def sims_end(self) -> int:
        """Simulations (counted from sims_start) the search may have run when this phase ends."""
        return math.floor(self._end(self.sims_total))

    def flops_end(self) -> float:
        """FLOPs (counted from flops_start) the search may have spent when this phase ends."""
        return self._end(self.flops_total)

    def next_child(self) -> int:
        return self.survivors[self._turn % len(self.survivors)]

    def visited(self) -> None:
        """The child `next_child` named took its visit: the turn passes on."""
        self._turn += 1

    def halve(self, scores: np.ndarray) -> None:
        """End the phase: keep the better half of the survivors (at least two) by `scores`
        (per root child), the best first: the next phase's round-robin order."""
        ranked = sorted(self.survivors, key=lambda i: -scores[i])
        self.survivors = ranked[:max(2, len(ranked) // 2)]
        self.phase += 1
        self._turn = 0

    def best(self, scores: np.ndarray) -> int:
        """The survivor with the highest score: the action the search plays."""
        return max(self.survivors, key=lambda i: scores[i])
