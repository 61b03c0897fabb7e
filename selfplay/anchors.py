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
from dataclasses import replace

from dpv.config import GameConfig, MCTSConfig, NetConfig
from dpv.games import make_game
from dpv.play.match import play_match
from dpv.nets import build_policy_value_net
from dpv.players.net_player import NetPlayer
from dpv.players.spec import make_player, parse_spec
from selfplay.gating import Tally, opening_moves


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


def play_anchor_match(game_cfg: GameConfig, net_cfg: NetConfig, mcts_cfg: MCTSConfig, weights,
                      spec: str, games: int, seed: int, device: str = "cpu") -> Tally:
    game = make_game(game_cfg)
    net = build_policy_value_net(net_cfg, game)
    net.load_state_dict(weights)
    cfg = replace(mcts_cfg, exit_mode="fixed", exit=-1, temperature_moves=0)
    ours = NetPlayer(net.eval(), game_cfg, cfg, seed=seed, device=device, name="selfplay-net")
    anchor = make_player(spec, game_cfg, seed=seed)
    try:
        result = play_match(ours, anchor, game_cfg, games, opening_moves=opening_moves(game_cfg),
                            seed=seed)
    finally:
        anchor.close()
        ours.close()
    return Tally(result.wins, result.losses, result.draws)
