"""Matches of the current network against fixed anchors (random, OpenSpiel MCTS, GNU Go).

The anchors are dpv player specs; our side is a dpv NetPlayer around the in-memory weights,
searching with the deepest exit and no noise. Colours alternate and game pairs share an
opening (dpv.play.match.play_match). A GTP anchor whose binary is not installed is skipped.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from typing import Any, Mapping

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.play.match import play_match
from dpv.play.records import MatchResult
from dpv.players.spec import make_player, parse_spec
from selfplay.gating import network_player, opening_moves


def anchor_name(spec: str) -> str:
    """A short TensorBoard-friendly name: 'random', 'mcts_sims=1000', 'gnugo'."""
    kind, opts = parse_spec(spec)
    if kind == "gtp":
        return os.path.basename(shlex.split(opts["command"])[0])
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec.strip())[:40]


def missing_binary(spec: str) -> str | None:
    """The executable a gtp anchor needs, when it is not installed (None otherwise)."""
    kind, opts = parse_spec(spec)
    if kind != "gtp":
        return None
    exe = shlex.split(opts["command"])[0]
    return None if shutil.which(exe) else exe


def play_anchor_match(game_cfg: GameConfig, net_cfg: NetConfig, mcts_cfg: MCTSConfig,
                      weights: Mapping[str, Any], spec: str, games: int, seed: int,
                      device: str = "cpu") -> MatchResult:
    """The network (A) against the anchor a player spec names (B)."""
    ours = network_player(game_cfg, net_cfg, mcts_cfg, weights, "selfplay-net", seed, device)
    anchor = make_player(spec, game_cfg, seed=seed)
    try:
        return play_match(ours, anchor, game_cfg, games, opening_moves=opening_moves(ours.game),
                          seed=seed)
    finally:
        anchor.close()
        ours.close()
