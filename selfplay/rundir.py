"""The run directory is the source of truth of a run (Ray actors hold nothing durable).

    config.yaml                 the run's config; another config is refused unless --force-config
    checkpoints/state-N.pt      a RunState: learner, best network, counters, RNG; last KEEP kept
    replay/replay-N.npz         the replay buffer that goes with state-N.pt
    best.pt                     the best network as a dpv policy-value checkpoint (arena, GTP)
    tb/                         TensorBoard event files
    log.txt                     one line per event (gating, anchors, saves, resumes)

A save writes replay-N, then best.pt, then state-N (each atomically: temp file + rename),
and only then removes older files; state-N names its replay file, so whatever moment a
SIGKILL lands, the newest complete state has its buffer beside it. This module is the one
place that writes and reads a state (RunState, with its format version).

Damage heals loudly: on resume, a newest state (or its buffer) that is torn or missing is
renamed to *.corrupt with one line saying what that loses, and the run continues from the
newest intact pair; with no intact pair the run is refused and nothing is touched.
"""
from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import yaml

from dpv.checkpoint import FORMAT_VERSION, atomic_write_bytes, save_checkpoint, save_policy_value
from dpv.config import ConfigError
from dpv.errors import CheckpointError
from selfplay.replay import CorruptReplay
from selfplay.schedule import Counters

STATE_RE = re.compile(r"^state-(\d{8})\.pt$")
INDEX_RE = re.compile(r"^(?:state|replay)-(\d{8})\.(?:pt|npz)(?:\.corrupt)?$")
SAVED_RE = re.compile(r"checkpoint (state-\d{8}\.pt): games (\d+) steps (\d+)")
KEEP = 3  # intact states (and their buffers) kept, as KataGo keeps the last few

# Version of the RunState layout inside state-N.pt. Format 1 is the dict that the code
# before RunState wrote: the same keys, without "run_state_format"; it is read as is.
RUN_STATE_FORMAT = 2
STATE_KEYS = ("counters", "learner", "best_model", "replay_file")


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


def _with_defaults(old):
    """A saved config with the fields added since it was written at their defaults (the
    behaviour it ran with: new options default to off), so an older run dir resumes."""
    from selfplay.config import load_run_config

    try:
        return load_run_config(data=old).to_dict()
    except ConfigError:  # not a config this package can read: compare it as it is
        return old


@dataclass
class RunState:
    """Everything a resumed run continues from; one state-N.pt holds one."""

    counters: Counters
    learner: dict  # Learner.state_dict(): model, optimizer, step count
    best_model: dict  # state_dict of the network self-play uses
    rng: dict | None = None  # bit-generator state of the driver's replay sampler
    config: dict = field(default_factory=dict)  # the run config it was saved under
    replay_file: str = ""  # name of its buffer in replay/
    saved_at: float = 0.0

    def to_payload(self) -> dict:
        # plain types and tensors only: torch.load(weights_only=True) reads it back
        return {"run_state_format": RUN_STATE_FORMAT, "counters": self.counters.to_dict(),
                "learner": self.learner, "best_model": self.best_model, "rng": self.rng,
                "config": self.config, "replay_file": self.replay_file, "saved_at": self.saved_at}

    @classmethod
    def from_payload(cls, payload: dict, path: Path) -> "RunState":
        fmt = payload.get("run_state_format", 1)
        if not isinstance(fmt, int) or fmt > RUN_STATE_FORMAT:
            raise CheckpointError(f"checkpoint {path} has run-state format {fmt!r}, newer than this "
                                  f"package reads ({RUN_STATE_FORMAT}); upgrade dpv to resume it")
        for key in STATE_KEYS:
            if key not in payload:
                raise CheckpointError(f"checkpoint {path} is not a self-play state (no {key!r}); "
                                      f"move it out of {path.parent} to resume from the one before")
        return cls(Counters.from_dict(payload["counters"]), payload["learner"], payload["best_model"],
                   payload.get("rng"), payload.get("config") or {}, payload["replay_file"],
                   float(payload.get("saved_at", 0.0)))


class Damaged(Exception):
    """A state file, or the buffer it names, is torn or missing (not the user's mistake)."""


@dataclass
class Resumed:
    state: RunState
    path: Path  # the state-N.pt resumed from
    replay_path: Path
    set_aside: list[str] = field(default_factory=list)  # one line per damaged state moved aside


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
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as e:
            raise ConfigError(f"run directory {self.path}: cannot create it ({e.strerror or e})") from None
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
        diff = _diff(_with_defaults(old), cfg_dict)
        if diff and not force:
            raise ConfigError(f"run directory {self.path} holds a run with a different config "
                              f"({diff}); use another --run-dir, or --force-config to continue it "
                              f"with the new config")
        return True

    def write_config(self, cfg_dict: dict) -> None:
        self._write("config", lambda: atomic_write_bytes(
            self.config_path, yaml.safe_dump(cfg_dict, sort_keys=False).encode()))

    # ---- reading states
    def states(self) -> list[tuple[int, Path]]:
        """The state files by index, oldest first (*.corrupt ones are not states)."""
        if not self.ckpt_dir.is_dir():
            return []
        out = []
        for p in self.ckpt_dir.iterdir():
            m = STATE_RE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    @staticmethod
    def read_state(path: Path) -> RunState:
        """One state file; Damaged when torn, CheckpointError when it is something else."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise Damaged("is missing") from None
        except Exception as e:  # torch raises many types for truncated or garbage files
            raise Damaged(f"is corrupt ({type(e).__name__})") from None
        if not isinstance(payload, dict) or "format_version" not in payload:
            raise CheckpointError(f"checkpoint {path} is not a DPV checkpoint (no format_version); "
                                  f"move it out of {path.parent} to resume from the one before")
        if payload["format_version"] > FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path} has format version {payload['format_version']}, "
                                  f"newer than this package reads ({FORMAT_VERSION})")
        return RunState.from_payload(payload, path)

    def newest_state(self) -> tuple[Path, RunState] | None:
        """The newest state as it is on disk, read only (no buffer, no healing)."""
        states = self.states()
        if not states:
            return None
        path = states[-1][1]
        return path, self.read_state(path)

    def resume(self, load_replay: Callable[[Path], None]) -> Resumed | None:
        """The newest intact state, its buffer loaded through `load_replay` (which raises
        CorruptReplay for a torn file). Newer damaged states are moved aside, loudly."""
        damaged: list[tuple[Path, str, RunState | None]] = []
        for _, path in reversed(self.states()):
            state = None
            try:
                state = self.read_state(path)
                replay = self.replay_dir / state.replay_file
                if not replay.is_file():
                    raise Damaged(f"names replay buffer {replay.name}, which is missing")
                load_replay(replay)
            except Damaged as e:
                damaged.append((path, str(e), state))
                continue
            except CorruptReplay as e:
                damaged.append((path, f"has a corrupt replay buffer {replay.name} ({e.reason})", state))
                continue
            notes = [self._set_aside(p, why, bad, state, path) for p, why, bad in damaged]
            return Resumed(state, path, replay, notes)
        if damaged:
            what = "; ".join(f"{p.name}: {why}" for p, why, _ in damaged)
            raise CheckpointError(f"no intact checkpoint in {self.ckpt_dir} ({what}); nothing was "
                                  f"changed: move checkpoints/ and replay/ away to start afresh, "
                                  f"or use another --run-dir")
        return None

    def _set_aside(self, path: Path, why: str, bad: RunState | None, good: RunState,
                   good_path: Path) -> str:
        moved = [path]
        if bad is not None and (self.replay_dir / bad.replay_file).is_file():
            moved.append(self.replay_dir / bad.replay_file)  # a torn buffer goes with its state
        for p in moved:
            os.replace(p, p.with_name(p.name + ".corrupt"))
        saved = self._saved_counts(path.name) if bad is None else (bad.counters.games, bad.counters.steps)
        if saved is None:
            lost = "what it held after that is lost (its log line is missing)"
        else:
            lost = (f"loses {saved[0] - good.counters.games} games and "
                    f"{saved[1] - good.counters.steps} learner steps")
        line = (f"checkpoint {path.name} {why}: moved aside to "
                f"{', '.join(p.name + '.corrupt' for p in moved)}; resuming from {good_path.name} "
                f"(games {good.counters.games}, steps {good.counters.steps}) {lost}")
        self.log(line)
        return line

    def _saved_counts(self, name: str) -> tuple[int, int] | None:
        """Games and steps of a state as its save logged them (a torn file cannot say)."""
        if not self.log_path.is_file():
            return None
        found = None
        for m in SAVED_RE.finditer(self.log_path.read_text(errors="replace")):
            if m.group(1) == name:
                found = int(m.group(2)), int(m.group(3))
        return found

    # ---- writing states
    def _next_index(self) -> int:
        """One past every index used, set-aside ones included, so no name is ever reused."""
        used = [0]
        for d in (self.ckpt_dir, self.replay_dir):
            if d.is_dir():
                used += [int(m.group(1)) for m in map(INDEX_RE.match, os.listdir(d)) if m]
        return max(used) + 1

    def save(self, state: RunState, buffer, best_net, game_cfg, best_extra: dict) -> Path:
        """Write buffer, best network and state (in that order), then prune old files.
        A failed write (disk full) leaves the previous state intact and is one CheckpointError."""
        index = self._next_index()
        replay_name = f"replay-{index:08d}.npz"
        path = self.ckpt_dir / f"state-{index:08d}.pt"
        state = replace(state, replay_file=replay_name, saved_at=time.time())
        self._write(path.name, lambda: (
            buffer.save(self.replay_dir / replay_name),
            save_policy_value(self.best_path, best_net, game_cfg, **best_extra),
            save_checkpoint(path, state.to_payload())))
        self._prune()
        c = state.counters
        self.log(f"checkpoint {path.name}: games {c.games} steps {c.steps} buffer {len(buffer)} "
                 f"best v{c.best_version}")
        return path

    def best_is_from(self, counters: Counters) -> bool:
        """Whether best.pt is the one saved with the state at these counters (a save that
        failed after writing best.pt, or a state moved aside, leaves another one there)."""
        try:
            got = torch.load(self.best_path, map_location="cpu", weights_only=True)
        except Exception:  # missing or torn: it is not
            return False
        return (isinstance(got, dict) and got.get("games") == counters.games
                and got.get("version") == counters.best_version)

    def write_best(self, best_net, game_cfg, best_extra: dict) -> None:
        self._write("best.pt", lambda: save_policy_value(self.best_path, best_net, game_cfg, **best_extra))

    def _write(self, what: str, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as e:
            prev = self.states()
            kept = f"{prev[-1][1].name} is intact" if prev else "no earlier checkpoint exists"
            raise CheckpointError(f"could not write {what} in {self.path} ({e.strerror or e}); "
                                  f"{kept}; free space and re-run to resume") from None

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
        # temp files of a writer killed mid-write (we hold the lock: none is in use)
        for d in (self.ckpt_dir, self.replay_dir, self.path):
            for p in d.glob(".*.tmp"):
                p.unlink(missing_ok=True)

    # ---- log
    def log(self, line: str) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError as e:  # a full disk: the next checkpoint write stops the run, loudly
            print(f"warning: could not append to {self.log_path} ({e.strerror or e})", file=sys.stderr)
