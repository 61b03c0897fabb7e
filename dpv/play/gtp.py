"""GTP v2 engine: serves any DPV player (a checkpoint with an exit mode and budget, random,
OpenSpiel MCTS) to GUIs and match runners (Lizzie, Sabaki, GoGui, gogui-twogtp, the arena).

    python -m dpv.gtp --checkpoint ckpt/best.pt --mode dynamic --n-ref 100 --tau0 0.6 --alpha 0.3
    python -m dpv.gtp --player random

Every command gets one reply, framed by `dpv.play.gtp_protocol` (no empty line inside);
errors are '? message' and never end the engine, and a failed command leaves the position as
it was. The pieces: `gtp_board` (showboard), `gtp_clock` (time), `gtp_handicap`,
`gtp_dead` (final_status_list, final_score), `gtp_analysis` and `gtp_search` (lz-analyze,
kata-analyze and timed moves, for network players), `sgf` (loadsgf, printsgf).
"""
from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from dpv import __version__
from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.play import gtp_handicap as handicap
from dpv.play.gtp_board import draw_board
from dpv.play.gtp_clock import ClockError, GameClock, TimeSystem
from dpv.play.gtp_dead import Judgement, Playouts, judge
from dpv.play.gtp_protocol import REPLY_END, Command, LineSource, frame, parse_command, reply_head
from dpv.play.sgf import SGFError, read_sgf, replay, setup_moves, write_sgf
from dpv.players.base import Player, Resign

ADMIN = ("protocol_version", "name", "version", "known_command", "list_commands", "quit")
SETUP = ("boardsize", "clear_board", "komi", "fixed_handicap", "place_free_handicap",
         "set_free_handicap", "loadsgf")
PLAY = ("play", "genmove", "kgs-genmove_cleanup", "undo")
CLOCK = ("time_settings", "kgs-time_settings", "time_left")
INFO = ("showboard", "printsgf", "final_score", "final_status_list")
ANALYSIS = ("lz-analyze", "lz-genmove_analyze", "kata-analyze", "kata-genmove_analyze")
COLOUR_WORDS = ("black", "white")

Write = Callable[[str], None]
Stop = Callable[[], bool]


class GTPFailure(Exception):
    """A command that fails: the engine answers '? <message>'."""


def _parse_colour(text: str) -> int:
    c = text.lower()
    if c in ("b", "black"):
        return 0
    if c in ("w", "white"):
        return 1
    raise GTPFailure("invalid color")


def go_config(size: int, komi: float, history: int = GameConfig.history,
              max_game_length: int | None = None) -> GameConfig:
    """The Go game a GTP session plays (GTP is Go's protocol); ConfigError naming the size
    when the game adapter has no such Go board."""
    cfg = GameConfig(name="go", board_size=size, komi=komi,
                     max_game_length=max_game_length or 4 * size * size, history=history)
    cfg.validate("game")
    return cfg


def _search_of(player: Player, seed: int):
    """The engine's hold on a network player's search (analysis, clock), None for players
    that search in their own way. A player can only be a NetPlayer if its module is loaded,
    so engines serving random or OpenSpiel players never import torch for this."""
    module = sys.modules.get("dpv.players.net_player")
    if module is None or not isinstance(player, module.NetPlayer):
        return None
    from dpv.play.gtp_search import PlayerSearch

    return PlayerSearch(player, np.random.default_rng(seed))


class GTPEngine:
    """The GTP state machine, independent of stdin/stdout so tests drive it directly.

    `player_factory(game_cfg)` builds the player for a board; it is called again when the
    board size or komi changes (a checkpoint for another size answers 'unacceptable size')."""

    def __init__(self, player_factory: Callable[[GameConfig], Player], game_cfg: GameConfig,
                 resign_threshold: float | None = None, name: str = "DPV", seed: int = 0,
                 version: str = __version__):
        self.factory = player_factory
        self.cfg = game_cfg
        self.resign_threshold = resign_threshold
        self.engine_name = name
        self.version = version  # ours, unless the user overrides it for a GUI (gtp_cli)
        self.seed = seed
        self.player = player_factory(game_cfg)
        self.search = _search_of(self.player, seed)
        self.game = make_game(game_cfg)
        self.state = self.game.new_state()
        self.clock = GameClock()
        self.setup = 0  # moves at the start of the history that placed handicap stones
        self.handicap: list[int] = []  # those stones (Black), for printsgf
        self._judged: tuple[tuple[int, ...], Judgement] | None = None
        self.finished = False  # after 'quit'

    # ------------------------------------------------------------------ plumbing
    def commands(self) -> tuple[str, ...]:
        analysis = ANALYSIS if self.search is not None else ()
        return ADMIN + SETUP + PLAY + CLOCK + INFO + analysis

    def respond(self, line: str, write: Write, stop: Stop) -> None:
        """Answer one input line through `write` (nothing for an empty line). Streaming
        commands (analysis) report until `stop()` says the next command has arrived."""
        cmd = parse_command(line)
        if cmd is None:
            return
        if cmd.name in ANALYSIS and cmd.name in self.commands():
            self._stream(cmd, write, stop)
        else:
            write(self._answer(cmd))

    def handle(self, line: str, stop: Stop | None = None) -> str | None:
        """The whole reply to one line (None for an empty line); analysis stops when
        `stop()` is True (by default after its first search step)."""
        out: list[str] = []
        self.respond(line, out.append, stop or (lambda: True))
        return "".join(out) or None

    def serve(self, inp: TextIO, out: TextIO, log: TextIO | None = None) -> None:
        """Read commands from `inp` until quit or end of input, answer on `out`; with a
        `log`, every line in ('<') and out ('>') is written to it with the time."""
        source = LineSource(inp)
        start = time.monotonic()

        def note(mark: str, text: str) -> None:
            if log is not None:
                for ln in text.rstrip("\n").split("\n"):
                    log.write(f"{time.monotonic() - start:9.3f} {mark} {ln}\n")
                log.flush()

        def write(text: str) -> None:
            out.write(text)
            out.flush()
            note(">", text)

        while (line := source.get()) is not None:
            note("<", line)
            self.respond(line, write, source.waiting)
            if self.finished:
                break

    def _answer(self, cmd: Command) -> str:
        if not cmd.name:
            return frame(cmd.ident, False, "missing command")
        try:
            if cmd.name not in self.commands():
                raise GTPFailure("unknown command")
            out = getattr(self, "cmd_" + cmd.name.replace("-", "_"))(cmd.args)
        except (GTPFailure, DPVError, ClockError, handicap.HandicapError) as e:
            return frame(cmd.ident, False, str(e))
        except Exception as e:  # a bug must not take a GUI's engine down: report it, go on
            traceback.print_exc(file=sys.stderr)
            return frame(cmd.ident, False, f"internal error: {type(e).__name__}: {e}")
        return frame(cmd.ident, True, out)

    def _size(self) -> int:
        return self.cfg.board_size

    def _new_game(self, cfg: GameConfig) -> None:
        """Switch board size / komi: a new player (for that board) and an empty board."""
        player = self.factory(cfg)  # raises before anything changes if the player refuses
        self.close_player()
        self.player, self.cfg = player, cfg
        self.search = _search_of(player, self.seed)
        self.game = make_game(cfg)
        self.state = self.game.new_state()
        self.setup, self.handicap = 0, []

    def _replay(self, moves: list[int]) -> None:
        """Rebuild the position from moves, and the player's view of it (after undo etc.)."""
        self.state = self.game.new_state()
        self.player.reset()
        for a in moves:
            self.player.notify_move(self.state, a)
            self.state.apply(a)

    def _clear(self) -> None:
        """An empty board (OpenSpiel's handicap stones go with a game built without them)."""
        if self.cfg.handicap:
            self._new_game(dataclasses.replace(self.cfg, handicap=0))
        self._replay([])
        self.setup, self.handicap = 0, []

    def _apply(self, action: int) -> None:
        self.player.notify_move(self.state, action)
        self.state.apply(action)

    def _to_move(self, colour: int) -> None:
        """GUIs may play one colour twice (setting up a position): the other side passes."""
        if colour == self.state.current_player():
            return
        pass_action = self.game.pass_action
        if pass_action is None:
            raise GTPFailure(f"{self.game.name} has no pass: each colour must play in turn")
        if self.state.history()[-1:] == [pass_action] or self.state.is_terminal():
            raise GTPFailure("cannot play the same colour twice right after a pass")
        self._apply(pass_action)

    def close_player(self) -> None:
        self.player.close()

    # ------------------------------------------------------------------ administrative
    def cmd_protocol_version(self, args):
        return "2"

    def cmd_name(self, args):
        return self.engine_name

    def cmd_version(self, args):
        return self.version

    def cmd_known_command(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: known_command COMMAND")
        return "true" if args[0] in self.commands() else "false"

    def cmd_list_commands(self, args):
        return "\n".join(self.commands())

    def cmd_quit(self, args):
        self.finished = True
        return ""

    # ------------------------------------------------------------------ setup
    def cmd_boardsize(self, args):
        if len(args) != 1 or not args[0].isdigit():
            raise GTPFailure("syntax error: boardsize SIZE")
        size = int(args[0])
        if size != self.cfg.board_size:
            try:
                cfg = go_config(size, self.cfg.komi, self.cfg.history)
            except DPVError:
                raise GTPFailure("unacceptable size") from None
            try:
                self._new_game(cfg)
            except DPVError as e:
                raise GTPFailure(f"unacceptable size ({e})") from None
        else:
            self._clear()
        return ""

    def cmd_clear_board(self, args):
        self._clear()
        return ""

    def cmd_komi(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: komi FLOAT")
        try:
            komi = float(args[0])
        except ValueError:
            raise GTPFailure("syntax error: komi is not a number") from None
        if komi != komi or abs(komi) > 1000:
            raise GTPFailure("syntax error: komi out of range")
        if komi != self.cfg.komi:
            moves, setup, stones = self.state.history(), self.setup, self.handicap
            self._new_game(dataclasses.replace(self.cfg, komi=komi))
            self._replay(moves)
            self.setup, self.handicap = setup, stones
        return ""

    def _place_handicap(self, stones: list[int]) -> str:
        """Black's handicap stones on an empty board (see gtp_handicap for how they are held)."""
        if self.state.history() or self.handicap:
            raise GTPFailure("board not empty")
        if handicap.uses_parameter(self._size(), set(stones)):  # OpenSpiel's own handicap
            self._new_game(dataclasses.replace(self.cfg, handicap=len(stones)))
            self.handicap = list(stones)
            return handicap.vertices(stones, self._size())
        moves = setup_moves(stones, self._size())
        for a in moves:
            if not self.state.is_legal(a):
                self._clear()
                raise GTPFailure(f"cannot place a stone at {action_to_vertex(a, self._size())}")
            self._apply(a)
        self.setup, self.handicap = len(moves), list(stones)
        return handicap.vertices(stones, self._size())

    def _count(self, args, command: str) -> int:
        if len(args) != 1 or not args[0].isdigit():
            raise GTPFailure(f"syntax error: {command} NUMBER_OF_STONES")
        return int(args[0])

    def cmd_fixed_handicap(self, args):
        n = self._count(args, "fixed_handicap")
        return self._place_handicap(handicap.fixed_points(self._size(), n))

    def cmd_place_free_handicap(self, args):
        n = self._count(args, "place_free_handicap")
        if n < 2:
            raise GTPFailure("invalid handicap: at least 2 stones")
        top = handicap.max_handicap(self._size())  # our free placement is the fixed one
        return self._place_handicap(handicap.fixed_points(self._size(), min(n, top) if top else n))

    def cmd_set_free_handicap(self, args):
        try:
            stones = [vertex_to_action(v, self._size()) for v in args]
        except ValueError:
            raise GTPFailure("invalid vertex") from None
        handicap.check_free(self._size(), stones)
        self._place_handicap(stones)
        return ""

    def cmd_loadsgf(self, args):
        """loadsgf FILE [MOVE]: the position before MOVE (default: after the last move).
        Board size and komi come from the file; nothing changes if anything fails."""
        if len(args) not in (1, 2) or (len(args) == 2 and not args[1].isdigit()):
            raise GTPFailure("syntax error: loadsgf FILE [MOVE_NUMBER]")
        path = args[0]
        try:
            record = read_sgf(path)
            if len(args) == 2:
                if int(args[1]) < 1:
                    raise GTPFailure("syntax error: move numbers start at 1")
                record.moves = record.moves[:int(args[1]) - 1]
            stones = record.setup_black
            param = handicap.uses_parameter(record.size, set(stones))
            cfg = go_config(record.size, record.komi, self.cfg.history)
            needed = 2 * (len(record.moves) + len(stones))  # passes may come between
            cfg = dataclasses.replace(cfg, max_game_length=max(needed, cfg.max_game_length),
                                      handicap=len(stones) if param else 0)
            moves = replay(dataclasses.replace(record, setup_black=[] if param else stones),
                           cfg).history()
            player = self.factory(cfg) if cfg != self.cfg else None
        except (DPVError, SGFError) as e:
            raise GTPFailure(f"cannot load {path}: {e}") from None
        if player is not None:
            self.close_player()
            self.player, self.cfg = player, cfg
            self.search = _search_of(player, self.seed)
            self.game = make_game(cfg)
        self._replay(moves)
        self.setup = 0 if param else len(setup_moves(stones, record.size))
        self.handicap = list(stones)
        return COLOUR_WORDS[self.state.current_player()]

    # ------------------------------------------------------------------ clock
    def _set_clock(self, system: TimeSystem) -> str:
        self.clock.set_system(system)
        if self.clock.limited and self.search is not None:
            lat = self.search.calibrate(self.game.new_state())
            print(f"dpv.gtp: measured latency per evaluation: {lat.describe()}", file=sys.stderr)
        return ""

    def cmd_time_settings(self, args):
        if len(args) != 3 or not all(a.isdigit() for a in args):
            raise GTPFailure("syntax error: time_settings MAIN BYO_YOMI STONES")
        return self._set_clock(TimeSystem.from_gtp(*(int(a) for a in args)))

    def cmd_kgs_time_settings(self, args):
        return self._set_clock(TimeSystem.from_kgs(args))

    def cmd_time_left(self, args):
        if len(args) != 3 or not args[1].isdigit() or not args[2].isdigit():
            raise GTPFailure("syntax error: time_left COLOR TIME STONES")
        self.clock.time_left(_parse_colour(args[0]), float(args[1]), int(args[2]))
        return ""

    # ------------------------------------------------------------------ play
    def _parse_move(self, args, what: str) -> tuple[int, int]:
        if len(args) != 2:
            raise GTPFailure(f"syntax error: {what} COLOR VERTEX")
        colour = _parse_colour(args[0])
        try:
            action = vertex_to_action(args[1], self._size())
        except ValueError:
            raise GTPFailure("invalid vertex") from None
        return colour, action

    def cmd_play(self, args):
        colour, action = self._parse_move(args, "play")
        if self.state.is_terminal():
            raise GTPFailure("illegal move")
        before = self.state.history()
        self._to_move(colour)
        if not self.state.is_legal(action):
            if self.state.history() != before:  # take back the pass we inserted
                self._replay(before)
            raise GTPFailure("illegal move")
        self._apply(action)
        return ""

    def _check_turn(self, colour: int) -> None:
        """What `_to_move` would refuse, refused before anything is played or written."""
        if (not self.state.is_terminal() and colour != self.state.current_player()
                and self.state.history()[-1:] == [self.game.pass_action]):
            raise GTPFailure("cannot play the same colour twice right after a pass")

    def _genmove(self, colour: int, report=None) -> str:
        """The player's move for `colour`, played; under a clock the search gets its share,
        and `report` = (request, write) makes it report as it goes (lz-genmove_analyze)."""
        if self.state.is_terminal():
            return "pass"
        before = self.state.history()
        self._to_move(colour)
        if self.state.is_terminal():
            return "pass"
        t0 = time.perf_counter()
        share = self.clock.share(colour, len(self.state.history()), self._size() ** 2)
        try:
            if self.search is not None and (share is not None or report is not None):
                action, info = self.search.move(self.state, share, *(report or (None, None)))
            else:  # the player's own search and budget (players without a tree ignore clocks)
                action = int(self.player.select_move(self.state))
                info = self.player.last_move
        except Resign:
            self._undo_inserted_pass(before)
            return "resign"
        self.clock.spend(colour, time.perf_counter() - t0)
        value = info.root_value
        if self.resign_threshold is not None and value is not None and value < self.resign_threshold:
            self._undo_inserted_pass(before)
            return "resign"
        if not self.state.is_legal(action):
            raise GTPFailure(f"engine chose an illegal move ({action})")
        self._apply(action)
        return action_to_vertex(action, self._size())

    def _undo_inserted_pass(self, before: list[int]) -> None:
        if self.state.history() != before:
            self._replay(before)

    def cmd_genmove(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: genmove COLOR")
        return self._genmove(_parse_colour(args[0]))

    def cmd_kgs_genmove_cleanup(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: kgs-genmove_cleanup COLOR")
        return self._genmove(_parse_colour(args[0]))

    def cmd_undo(self, args):
        moves = self.state.history()
        if len(moves) <= self.setup:
            raise GTPFailure("cannot undo")
        self._replay(moves[:-1])
        return ""

    # ------------------------------------------------------------------ information
    def cmd_showboard(self, args):
        return draw_board(self.game, self.state)

    def _judgement(self) -> Judgement:
        """Dead stones and the score without them, for the position as it stands (cached): from
        the network's ownership head where it has one, else from playouts (gtp_dead)."""
        key = tuple(self.state.history())
        if self._judged is None or self._judged[0] != key:
            black, white = self.game.stones(self.state.spiel_state)
            own = self.search.black_ownership(self.state) if self.search is not None else None
            if own is None:  # no ownership head: eye-keeping random playouts
                own = Playouts(self.game, np.random.default_rng(self.seed)).ownership(list(key))
            self._judged = (key, judge(black, white, self.cfg.komi, own))
        return self._judged[1]

    def cmd_final_score(self, args):
        if self.state.is_terminal() and self.game.result(self.state).reason != "score":
            return self.game.result(self.state).text  # superko or length limit: OpenSpiel's end
        return self._judgement().score.result

    def cmd_final_status_list(self, args):
        if len(args) != 1 or args[0] not in ("alive", "dead", "seki"):
            raise GTPFailure("syntax error: final_status_list alive|dead|seki")
        if args[0] == "seki":
            return ""  # the playouts know no seki (gtp_dead)
        dead = self._judgement().dead
        black, white = self.game.stones(self.state.spiel_state)
        stones = (black | white).astype(bool)
        chosen = dead if args[0] == "dead" else stones & ~dead
        n = self._size()
        return " ".join(action_to_vertex(int(i), n) for i in np.flatnonzero(chosen.reshape(-1)))

    def _sgf_text(self) -> str:
        moves = self.state.history()[self.setup:]
        result = None
        if self.state.is_terminal():
            result = self.cmd_final_score([])
        return write_sgf(moves, self._size(), self.cfg.komi, result=result,
                         setup_black=self.handicap, first_colour=1 if self.handicap else 0,
                         extra={"GN": f"{self.engine_name} printsgf"})

    def cmd_printsgf(self, args):
        if len(args) > 1:
            raise GTPFailure("syntax error: printsgf [FILE]")
        text = self._sgf_text()
        if not args:
            return text.rstrip("\n")
        from dpv.checkpoint import atomic_write_bytes

        try:
            atomic_write_bytes(Path(args[0]), text.encode())
        except OSError as e:
            raise GTPFailure(f"cannot write {args[0]}: {e.strerror or e}") from None
        return ""

    # ------------------------------------------------------------------ analysis
    def _stream(self, cmd: Command, write: Write, stop: Stop) -> None:
        """lz-analyze / kata-analyze report until stop(); their genmove forms report while
        searching and end with 'play VERTEX'. Argument errors are ordinary '?' replies."""
        from dpv.play.gtp_analysis import AnalysisError, parse_request

        try:
            request = parse_request(cmd.name, cmd.args)
            to_move = self.state.current_player()
            genmove = cmd.name.endswith("genmove_analyze")
            colour = request.colour if request.colour is not None else to_move
            if genmove:
                self._check_turn(colour)
            elif colour != to_move:
                raise GTPFailure(f"{cmd.name} {'BW'[colour]}: {COLOUR_WORDS[to_move]} "
                                 "is to move here (this engine analyses the side to move)")
        except (AnalysisError, GTPFailure) as e:
            write(frame(cmd.ident, False, str(e)))
            return
        if genmove:
            write(reply_head(cmd.ident))
            try:
                move = self._genmove(colour, report=(request, write))
                write(f"play {move}\n")
            except Exception:  # the reply has begun: close it, say why on stderr
                traceback.print_exc(file=sys.stderr)
            write(REPLY_END)
            return
        write(reply_head(cmd.ident))
        try:
            self.search.analyse(self.state, request, write, stop)
        except Exception:
            traceback.print_exc(file=sys.stderr)
        write(REPLY_END)
