"""Evaluation match between two networks (candidate vs best), colours alternated, batched.

Played by the match engine's batched mode (`dpv.play.match.play_batched_match`): games 2i
and 2i+1 share a random opening with colours swapped, so neither side gains from the
openings and deterministic searches still play different games; at each step all games
where one network is to move go through one batched search call. The candidate replaces the
best network only if it scores MORE than the threshold (wins + draws/2, thesis: > 55%).
Its opponent is the best network, or with gating.opponent "previous" the candidate gated
before it (selfplay.driver); with gating.enabled false there is no match at all.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Protocol

import torch

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.games import make_game
from dpv.games.base import Game
from dpv.nets import build_policy_value_net
from dpv.play.match import play_batched_match
from dpv.play.records import MatchResult
from dpv.players.net_player import NetPlayer


class Scored(Protocol):
    """A match result as promotion reads it (a `MatchResult`, or a tally of several)."""

    @property
    def games(self) -> int: ...

    @property
    def score(self) -> float: ...


def promote(result: Scored, threshold: float) -> bool:
    return result.games > 0 and result.score > threshold


def opening_moves(game: Game) -> int:
    """Random opening moves per game pair: enough for variety, few enough to matter little.
    By the size of the game: 1 where there are few moves (tic-tac-toe, connect four), 2 up
    to a 9x9 board, 4 on larger ones."""
    if game.num_actions < 20:
        return 1
    return 2 if game.num_actions <= 82 else 4


def network_player(game_cfg: GameConfig, net_cfg: NetConfig, mcts_cfg: MCTSConfig,
                   weights: Mapping[str, Any], name: str, seed: int = 0,
                   device: str = "cpu") -> NetPlayer:
    """A network from its weights, searching with its deepest exit, greedy and noise-free
    (a Gumbel root without its Gumbel noise)."""
    net = build_policy_value_net(net_cfg, make_game(game_cfg))
    net.load_state_dict(weights)
    cfg = replace(mcts_cfg, exit_mode="fixed", exit=-1, temperature_moves=0, gumbel_scale=0.0)
    return NetPlayer(net.to(device).eval(), game_cfg, cfg, seed=seed, device=device, name=name)


def play_network_match(game_cfg: GameConfig, net_cfg: NetConfig, mcts_cfg: MCTSConfig,
                       weights_a: Mapping[str, Any], weights_b: Mapping[str, Any], games: int,
                       concurrent: int, seed: int, first_pair: int = 0,
                       device: str = "cpu") -> MatchResult:
    """A (candidate) vs B (best) over `games` games, A black in even-numbered games, at most
    `concurrent` at once. `first_pair` offsets the openings so several actors can share one
    match: their results, joined by `MatchResult.combine`, are the whole match's."""
    a = network_player(game_cfg, net_cfg, mcts_cfg, weights_a, "candidate", seed, device)
    b = network_player(game_cfg, net_cfg, mcts_cfg, weights_b, "best", seed, device)
    with torch.inference_mode():
        return play_batched_match(a, b, game_cfg, games, concurrent=concurrent,
                                  opening_moves=opening_moves(a.game), seed=seed,
                                  first_game=2 * first_pair)
