"""Checkpoints: written atomically (temp file, fsync, rename), carry their config and a
format version, and fail on load with one line naming the file and what is wrong."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dpv.config import GameConfig, NetConfig, from_dict, to_dict
from dpv.errors import CheckpointError, ConfigError
from dpv.games.registry import board_sizes
from dpv.nets.policy_value import build_policy_value_net

# 2: a policy-value net's config may name auxiliary heads (net.aux_heads, ownership and
# score weights) and its weights then hold them. A format-1 checkpoint has neither: its net
# config lacks those keys, which take their defaults (aux_heads none), so it loads as the
# net it was, unchanged. Older packages refuse format 2 (newer than they read).
FORMAT_VERSION = 2


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    payload = dict(payload)
    payload.setdefault("format_version", FORMAT_VERSION)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise CheckpointError(f"checkpoint {p} is corrupt or not a DPV checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"checkpoint {p} is not a DPV checkpoint (no format_version)")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {p} has format version {payload['format_version']}, newer than this "
            f"package reads ({FORMAT_VERSION})")
    return payload


def policy_value_payload(net, game_cfg: GameConfig, **extra: Any) -> dict[str, Any]:
    return {"kind": "policy_value", "game": to_dict(game_cfg), "net": to_dict(net.config),
            "model": net.state_dict(), **extra}


def save_policy_value(path: str | Path, net, game_cfg: GameConfig, **extra: Any) -> None:
    save_checkpoint(path, policy_value_payload(net, game_cfg, **extra))


def load_policy_value(path: str | Path, device: str | torch.device = "cpu",
                      expect_game: GameConfig | None = None):
    """Load a policy-value network; returns (net, game_cfg). Refuses another game/board size."""
    from dpv.games.spiel import make_game  # OpenSpiel only for those who load a network

    payload = load_checkpoint(path, device)
    if payload.get("kind") != "policy_value":
        raise CheckpointError(f"checkpoint {path} holds a {payload.get('kind')!r} model, not a policy-value network")
    try:
        game_cfg = from_dict(GameConfig, payload["game"], "game")
        net_cfg = from_dict(NetConfig, payload["net"], "net")
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {e}") from None
    if expect_game is not None:
        if game_cfg.name != expect_game.name:
            raise CheckpointError(f"checkpoint {path} is for {game_cfg.name}, not {expect_game.name}")
        if board_sizes(game_cfg.name) is not None and game_cfg.board_size != expect_game.board_size:
            raise CheckpointError(
                f"board size mismatch: checkpoint {path} is for {game_cfg.board_size}x{game_cfg.board_size}, "
                f"but {expect_game.board_size}x{expect_game.board_size} was asked for")
    net = build_policy_value_net(net_cfg, make_game(game_cfg))
    try:
        net.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit its config ({str(e).splitlines()[0]})") from None
    return net.to(device).eval(), game_cfg
