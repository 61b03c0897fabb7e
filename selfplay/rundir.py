"""The run directory is the source of truth of a run (Ray actors hold nothing durable).

    config.yaml                 the run's config; another config is refused unless --force-config
    checkpoints/state-N.pt      learner model + optimizer, best network, counters, RNG; last few kept
    replay/replay-N.npz         the replay buffer that goes with state-N.pt
    best.pt                     the best network as a dpv policy-value checkpoint (arena, GTP)
    tb/                         TensorBoard event files
    log.txt                     one line per event (gating, anchors, saves, resumes)

A save writes replay-N, then best.pt, then state-N (each atomically: temp file + rename),
and only then removes older files; state-N names its replay file, so whatever moment a
SIGKILL lands, the newest complete state has its buffer beside it.
"""
from __future__ import annotations

import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dpv.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint, save_policy_value
from dpv.config import ConfigError
from dpv.errors import CheckpointError

STATE_RE = re.compile(r"^state-(\d{8})\.pt$")
KEEP = 2  # states (and their buffers) kept: a damaged newest file still leaves older ones


def _diff(old, new, prefix: str = "") -> str | None:
    """First differing key between two config dicts, as 'a.b: old -> new'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _diff(old.get(k), new.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        old, new = list(old), list(new)
    return None if old == new else f"{prefix[:-1]}: {old!r} -> {new!r}"


@dataclass
class Resumed:
    state: dict  # the payload of the newest state-N.pt
    replay_path: Path
    path: Path


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.ckpt_dir = self.path / "checkpoints"
        self.replay_dir = self.path / "replay"
        self.best_path = self.path / "best.pt"
        self.tb_dir = self.path / "tb"
        self.log_path = self.path / "log.txt"
        self._lock_fd: int | None = None

    # ---- opening
    def lock(self) -> None:
        """One process per run directory: a second one would interleave checkpoints."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"run directory {self.path} is in use by another process") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def check_config(self, cfg_dict: dict, force: bool) -> bool:
        """Refuse a run dir that holds another config (unless forced). True if it held one."""
        if not self.config_path.exists():
            return False
        try:
            old = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError:
            raise ConfigError(f"{self.config_path} is not valid YAML") from None
        diff = _diff(old, cfg_dict)
        if diff and not force:
            raise ConfigError(f"run directory {self.path} holds a run with a different config "
                              f"({diff}); use another --run-dir, or --force-config to continue it "
                              f"with the new config")
        return True

    def write_config(self, cfg_dict: dict) -> None:
        atomic_write_bytes(self.config_path, yaml.safe_dump(cfg_dict, sort_keys=False).encode())

    # ---- checkpoints
    def states(self) -> list[tuple[int, Path]]:
        if not self.ckpt_dir.is_dir():
            return []
        out = []
        for p in self.ckpt_dir.iterdir():
            m = STATE_RE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def latest(self) -> Resumed | None:
        """The newest state and its buffer; a corrupt newest state is an error, not skipped,
        so a damaged run is never silently rolled back."""
        states = self.states()
        if not states:
            return None
        _, path = states[-1]
        state = load_checkpoint(path)
        for key in ("counters", "learner", "best_model", "replay_file"):
            if key not in state:
                raise CheckpointError(f"checkpoint {path} is not a self-play state (no {key!r}); "
                                      f"remove it to resume from the one before")
        replay = self.replay_dir / state["replay_file"]
        if not replay.is_file():
            raise CheckpointError(f"checkpoint {path} names replay buffer {replay}, which is missing")
        return Resumed(state, replay, path)

    def save(self, payload: dict, buffer, best_net, game_cfg, best_extra: dict) -> Path:
        """Write buffer, best network and state (in that order), then prune old files."""
        index = (self.states()[-1][0] + 1) if self.states() else 1
        replay_name = f"replay-{index:08d}.npz"
        buffer.save(self.replay_dir / replay_name)
        save_policy_value(self.best_path, best_net, game_cfg, **best_extra)
        path = self.ckpt_dir / f"state-{index:08d}.pt"
        save_checkpoint(path, {**payload, "replay_file": replay_name, "saved_at": time.time()})
        self._prune()
        return path

    def _prune(self) -> None:
        states = self.states()
        keep = states[-KEEP:]
        for _, p in states[:-KEEP]:
            p.unlink(missing_ok=True)
        wanted = {f"replay-{i:08d}.npz" for i, _ in keep}
        if self.replay_dir.is_dir():
            for p in self.replay_dir.glob("replay-*.npz"):
                if p.name not in wanted:
                    p.unlink(missing_ok=True)

    # ---- log
    def log(self, line: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
