"""Evaluation match between two networks (candidate vs best), colours alternated, batched.

Games 2i and 2i+1 share a random opening with colours swapped, so neither side gains from
the openings and deterministic searches still play different games. At each step all games
where network A is to move go through one batched search call, then those of network B.
The candidate replaces the best network only if it scores MORE than the threshold
(wins + draws/2, thesis: > 55%).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.evaluator import BatchedEvaluator
from dpv.exits import FixedExit
from dpv.games import make_game
from dpv.play.match import random_opening
from dpv.mcts import MCTS, run_searches
from dpv.nets import build_policy_value_net


@dataclass
class Tally:
    wins: int = 0  # for network A (the candidate)
    losses: int = 0
    draws: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def score(self) -> float:
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.wins + other.wins, self.losses + other.losses, self.draws + other.draws)

    def to_dict(self) -> dict:
        return {"wins": self.wins, "losses": self.losses, "draws": self.draws, "score": self.score}


def promote(result: Tally, threshold: float) -> bool:
    return result.games > 0 and result.score > threshold


def opening_moves(game_cfg: GameConfig) -> int:
    """Random opening moves per game pair: enough for variety, few enough to matter little."""
    if game_cfg.name == "go":
        return 2 if game_cfg.board_size <= 9 else 4
    return 1


def play_network_match(game_cfg: GameConfig, net_cfg: NetConfig, mcts_cfg: MCTSConfig,
                       weights_a, weights_b, games: int, concurrent: int, seed: int,
                       first_pair: int = 0, device: str = "cpu") -> Tally:
    """A (candidate) vs B (best) over `games` games, A black in even-numbered games.
    `first_pair` offsets the openings so several actors can share one match."""
    game = make_game(game_cfg)
    nets = []
    for w in (weights_a, weights_b):
        net = build_policy_value_net(net_cfg, game)
        net.load_state_dict(w)
        nets.append(net.to(device).eval())
    cfg = replace(mcts_cfg, exit_mode="fixed", exit=-1, temperature_moves=0)
    evaluators = [BatchedEvaluator(n, FixedExit(-1), device) for n in nets]
    result = Tally()
    n_open = opening_moves(game_cfg)
    pending = list(range(games))
    with torch.inference_mode():
        while pending:
            batch, pending = pending[:concurrent], pending[concurrent:]
            result = result + _play_batch(game, cfg, evaluators, batch, n_open, seed, first_pair)
    return result


def _play_batch(game, cfg, evaluators, indices, n_open, seed, first_pair) -> Tally:
    states, searches, a_colour = [], [], []
    for i in indices:
        pair = first_pair + i // 2
        st = game.new_state()
        for a in random_opening(game, n_open, np.random.default_rng([seed, pair])):
            st.apply(a)
        states.append(st)
        a_colour.append(i % 2)  # A is black (0) in even games
        rng = np.random.default_rng([seed, first_pair + i, 1])
        searches.append([MCTS(game, cfg, ev, rng=rng) for ev in evaluators])
    live = [j for j, st in enumerate(states) if not st.is_terminal()]
    while live:
        for side in (0, 1):  # 0 = network A, 1 = network B
            turn = [j for j in live if not states[j].is_terminal()
                    and (states[j].current_player() == a_colour[j]) == (side == 0)]
            if not turn:
                continue
            res = run_searches([searches[j][side] for j in turn], [states[j] for j in turn],
                               evaluators[side], add_noise=False)
            for j, r in zip(turn, res):
                action = int(np.argmax(r.visits))
                states[j].apply(action)
                for s in searches[j]:
                    s.advance(action)
        live = [j for j in live if not states[j].is_terminal()]
    out = Tally()
    for st, colour in zip(states, a_colour):
        ret = st.returns()[colour]
        if ret > 0:
            out.wins += 1
        elif ret < 0:
            out.losses += 1
        else:
            out.draws += 1
    return out
