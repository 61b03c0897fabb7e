"""A player that is an external GTP engine (GNU Go, another `python -m dpv.gtp`, ...).

The engine runs as a subprocess spoken to over stdin/stdout. It is kept in step with the game
by replaying the moves it has not seen, so random openings and resets need no special care.
An engine that dies, times out or answers nonsense raises `EngineError` (a `PlayerFailure`):
the match records a forfeit and, at the next `reset`, starts a fresh engine.
"""
from __future__ import annotations

import os
import select
import shlex
import subprocess
import tempfile
import time
from typing import IO

from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.games.base import GameState
from dpv.players.base import MoveInfo, Player, PlayerFailure, Resign

COLOURS = ("b", "w")
GTP_GAMES = ("go",)  # the Go Text Protocol names Go's vertices and passes, nothing else


class EngineError(PlayerFailure):
    """The engine process failed (died, timed out, broke the protocol)."""


class GTPRefusal(DPVError):
    """The engine answered a command with '? message'."""


class GTPPlayer(Player):
    def __init__(self, command: str, game_cfg: GameConfig, name: str | None = None,
                 timeout: float = 600.0):
        if game_cfg.name not in GTP_GAMES:
            raise DPVError(f"GTP engines play Go, not {game_cfg.name}")
        self.command = command
        self.argv = shlex.split(command)
        if not self.argv:
            raise DPVError("GTP engine command is empty")
        self.name = name or f"gtp:{os.path.basename(self.argv[0])}"
        self.size = game_cfg.board_size
        self.komi = float(game_cfg.komi)
        self.timeout = timeout
        self.last_move = MoveInfo()
        self._proc: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None
        self._buf = b""
        self._known: list[int] = []  # moves the engine has on its board, in order
        self._start()

    # ------------------------------------------------------------------ process
    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        try:
            # own session: a Ctrl-C at the terminal reaches the arena, which closes engines itself
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, start_new_session=True)
        except FileNotFoundError:
            raise DPVError(f"GTP engine not found: {self.argv[0]!r} (command: {self.command})") from None
        except PermissionError:
            raise DPVError(f"GTP engine is not executable: {self.argv[0]!r}") from None
        self._buf = b""
        self._known = []
        try:
            self.send(f"boardsize {self.size}")
        except GTPRefusal as e:
            self.close()
            raise DPVError(f"board size mismatch: engine {self.name} refuses a "
                           f"{self.size}x{self.size} board ({e})") from None
        except EngineError as e:
            self.close()
            raise DPVError(f"GTP engine {self.name} failed to start: {e}") from None
        self.send(f"komi {self.komi:g}")
        self.send("clear_board")

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return f"; stderr: {lines[-1][:200]}" if lines else ""

    def _died(self, command: str) -> EngineError:
        proc = self._proc
        try:
            code = proc.wait(timeout=5) if proc is not None else None
        except subprocess.TimeoutExpired:  # closed its output but still running
            assert proc is not None
            proc.kill()
            code = proc.wait()
        return EngineError(f"engine exited (code {code}) during '{command}'{self._stderr_tail()}")

    def _read_response(self, command: str) -> str:
        """Read up to the blank line that ends a GTP response, within the timeout."""
        deadline = time.monotonic() + self.timeout
        assert self._proc is not None and self._proc.stdout is not None  # send() checked alive
        fd = self._proc.stdout.fileno()
        while b"\n\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"no answer to '{command}' within {self.timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._died(command)
            self._buf += chunk.replace(b"\r", b"")
        text, self._buf = self._buf.split(b"\n\n", 1)
        return text.decode(errors="replace")

    def send(self, command: str) -> str:
        """Send one command; returns the answer text; GTPRefusal on '? ...'."""
        if not self.alive:
            raise self._died(command) if self._proc is not None else EngineError("engine not running")
        assert self._proc is not None and self._proc.stdin is not None  # alive
        try:
            self._proc.stdin.write(command.encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(command) from None
        text = self._read_response(command).lstrip("\n")
        if text.startswith("="):
            return text[1:].lstrip("0123456789").strip()
        if text.startswith("?"):
            raise GTPRefusal(text[1:].lstrip("0123456789").strip() or "error")
        raise EngineError(f"answered '{command}' with {text[:80]!r}, not a GTP response")

    def _send_move(self, command: str) -> str:
        try:
            return self.send(command)
        except GTPRefusal as e:
            raise EngineError(f"engine refused '{command}': {e}") from None

    # ------------------------------------------------------------------ player protocol
    def reset(self) -> None:
        if not self.alive:  # it died last game: the match goes on with a fresh one
            self.close()
            self._start()
            return
        self._send_move("clear_board")
        self._known = []

    def _sync(self, state: GameState) -> None:
        """Bring the engine's board to `state` by replaying what it has not seen."""
        history = state.history()
        if history[: len(self._known)] != self._known:
            self._send_move("clear_board")
            self._known = []
        for i in range(len(self._known), len(history)):
            a = history[i]
            self._send_move(f"play {COLOURS[i % 2]} {action_to_vertex(a, self.size)}")
            self._known.append(a)

    def select_move(self, state: GameState) -> int:
        t0 = time.perf_counter()
        self._sync(state)
        colour = COLOURS[state.current_player()]
        answer = self._send_move(f"genmove {colour}")
        seconds = time.perf_counter() - t0
        self.last_move = MoveInfo(seconds=seconds)
        if answer.lower() == "resign":
            raise Resign()
        try:
            action = vertex_to_action(answer, self.size)
        except ValueError:
            raise EngineError(f"answered 'genmove {colour}' with {answer!r}, not a move") from None
        self._known.append(action)
        return action

    def notify_move(self, state: GameState, action: int) -> None:
        history = state.history()
        if self._known == history + [action]:
            return  # the engine chose this move itself
        self._sync(state)
        self._send_move(f"play {COLOURS[len(history) % 2]} {action_to_vertex(action, self.size)}")
        self._known.append(action)

    def final_score(self) -> str | None:
        try:
            return self.send("final_score")
        except GTPRefusal as e:
            return f"refused: {e}"

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(b"quit\n")
                    proc.stdin.flush()
                    proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is None:
                    continue
                try:
                    f.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: best effort only
            pass
