"""Player spec strings -> players, so the arena, the GTP engine and experiments name agents
the same way:

    random[:name=X]
    mcts:sims=1000[,uct_c=2,rollouts=1,name=X]            OpenSpiel's C++ MCTS, random rollouts
    net:PATH[,mode=dynamic,n_ref=100,tau0=0.6,alpha=0.3,exit=-1,sims=100,...]
    net:NAME[,...]                                       a network shipped in models/ (net:go9)
    gtp:"<command line>"[,name=X]                          an external GTP engine

Bad specs raise DPVError with one line naming the kind or key at fault; a net:NAME that is
not shipped names the networks that are (dpv.shipped_models).
"""
from __future__ import annotations

import shlex
from typing import Mapping

from dpv.config import BUDGET_ENDS, EXIT_MODES, GameConfig
from dpv.errors import DPVError
from dpv.players.base import Player

KINDS = ("random", "mcts", "net", "gtp")

# key -> (type, what it sets); net keys map onto MCTSConfig fields in net_player
MCTS_KEYS = {"sims": int, "uct_c": float, "rollouts": int, "name": str, "solve": bool}
NET_KEYS = {
    "mode": str, "n_ref": int, "tau0": float, "alpha": float, "exit": int, "sims": int,
    "c_puct": float, "fpu": float, "leaves": int, "temperature": float,
    "temperature_moves": int, "noise": bool, "name": str, "budget_end": str,
}
RANDOM_KEYS = {"name": str}
GTP_KEYS = {"name": str}


def _parse_value(spec: str, key: str, raw: str, tp: type):
    try:
        if tp is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return tp(raw)
    except ValueError:
        raise DPVError(f"player spec {spec!r}: {key}={raw!r} is not a valid {tp.__name__}") from None


def _parse_options(spec: str, kind: str, items: list[str], known: Mapping[str, type]) -> dict:
    opts: dict = {}
    for item in items:
        if "=" not in item:
            raise DPVError(f"player spec {spec!r}: expected key=value, got {item!r}")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key not in known:
            raise DPVError(f"player spec {spec!r}: unknown key {key!r} for kind {kind!r} "
                           f"(known: {', '.join(sorted(known))})")
        opts[key] = _parse_value(spec, key, raw, known[key])
    return opts


def _split_items(body: str) -> list[str]:
    return [s for s in (p.strip() for p in body.split(",")) if s]


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split a spec into (kind, options); validates kinds, keys, types and ranges."""
    spec = spec.strip()
    kind, _, body = spec.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise DPVError(f"player spec {spec!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if kind == "random":
        return kind, _parse_options(spec, kind, _split_items(body), RANDOM_KEYS)
    if kind == "mcts":
        opts = _parse_options(spec, kind, _split_items(body), MCTS_KEYS)
        for key in ("sims", "rollouts"):
            if key in opts and opts[key] < 1:
                raise DPVError(f"player spec {spec!r}: {key} must be >= 1, got {opts[key]}")
        if "uct_c" in opts and opts["uct_c"] <= 0:
            raise DPVError(f"player spec {spec!r}: uct_c must be > 0, got {opts['uct_c']}")
        return kind, opts
    if kind == "gtp":
        command, rest = _split_gtp(spec, body)
        opts = _parse_options(spec, kind, _split_items(rest), GTP_KEYS)
        opts["command"] = command
        return kind, opts
    # net: first item is the checkpoint path
    items = _split_items(body)
    if not items or "=" in items[0]:
        raise DPVError(f"player spec {spec!r}: net needs a checkpoint path first (net:PATH,...)")
    opts = _parse_options(spec, kind, items[1:], NET_KEYS)
    opts["path"] = items[0]
    _check_net_options(spec, opts)
    return kind, opts


def _split_gtp(spec: str, body: str) -> tuple[str, str]:
    """`gtp:"cmd args",name=X` or `gtp:cmd args` (no options) -> (command, options text)."""
    body = body.strip()
    if body[:1] in ("'", '"'):
        quote = body[0]
        end = body.find(quote, 1)
        if end < 0:
            raise DPVError(f"player spec {spec!r}: unterminated quote in the GTP command")
        command, rest = body[1:end], body[end + 1:].strip()
        if rest and not rest.startswith(","):
            raise DPVError(f"player spec {spec!r}: expected ',key=value' after the quoted command")
        rest = rest[1:]
    else:
        command, rest = body, ""
    if not shlex.split(command):
        raise DPVError(f"player spec {spec!r}: gtp needs a command line (gtp:\"gnugo --mode gtp\")")
    return command, rest


def _check_net_options(spec: str, opts: dict) -> None:
    mode = opts.get("mode", "fixed")
    if mode not in EXIT_MODES:
        raise DPVError(f"player spec {spec!r}: unknown mode {mode!r} (known: {', '.join(EXIT_MODES)})")
    if opts.get("budget_end", "cap") not in BUDGET_ENDS:
        raise DPVError(f"player spec {spec!r}: unknown budget_end {opts['budget_end']!r} "
                       f"(known: {', '.join(BUDGET_ENDS)})")
    if "n_ref" in opts and opts["n_ref"] <= 0:
        raise DPVError(f"player spec {spec!r}: n_ref must be > 0, got {opts['n_ref']}")
    if "tau0" in opts and not 0.0 <= opts["tau0"] <= 1.0:
        raise DPVError(f"player spec {spec!r}: tau0={opts['tau0']} is outside [0, 1]")
    for key in ("sims", "leaves"):
        if key in opts and opts[key] < 1:
            raise DPVError(f"player spec {spec!r}: {key} must be >= 1, got {opts[key]}")
    if "c_puct" in opts and opts["c_puct"] <= 0:
        raise DPVError(f"player spec {spec!r}: c_puct must be > 0, got {opts['c_puct']}")


def make_player(spec: str, game_cfg: GameConfig, seed: int = 0, device: str = "cpu") -> Player:
    """Build the player a spec names, for the game `game_cfg`."""
    kind, opts = parse_spec(spec)
    name = opts.pop("name", None)
    if kind == "random":
        from dpv.players.random_player import RandomPlayer

        return RandomPlayer(seed=seed, name=name or "random")
    if kind == "mcts":
        from dpv.players.spiel_mcts import SpielMCTSPlayer

        return SpielMCTSPlayer(game_cfg, seed=seed, name=name, **opts)
    if kind == "gtp":
        from dpv.players.gtp_player import GTPPlayer  # written by the arena/GTP work

        command = opts.pop("command")
        return GTPPlayer(command, game_cfg, name=name or f"gtp:{shlex.split(command)[0]}")
    from dpv.players.net_player import NetPlayer
    from dpv.shipped_models import resolve_network

    given = opts.pop("path")
    path = resolve_network(given)
    player = NetPlayer.from_spec(path, game_cfg, opts, seed=seed, device=device, name=name)
    if name is None and path != given:  # reports name a shipped network by its short name
        player.name = player.name.replace(path, given, 1)
    return player
