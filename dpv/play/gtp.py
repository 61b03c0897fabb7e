"""GTP v2 engine: serves any DPV player (a checkpoint with an exit mode and budget, random,
OpenSpiel MCTS) to GUIs and match runners (GoGui, Sabaki, gogui-twogtp, the arena).

    python -m dpv.gtp --checkpoint ckpt/best.pt --mode dynamic --n-ref 100 --tau0 0.6 --alpha 0.3
    python -m dpv.gtp --player random

Every command gets an answer; errors are '? message' lines and never end the engine.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, TextIO

from dpv import __version__
from dpv.config import GameConfig
from dpv.errors import DPVError, cli_main
from dpv.games import make_game
from dpv.games.coords import action_to_vertex, vertex_to_action
from dpv.games.scoring import score_state
from dpv.players.base import Player, Resign

COMMANDS = (
    "protocol_version", "name", "version", "known_command", "list_commands", "quit",
    "boardsize", "clear_board", "komi", "play", "genmove", "undo", "showboard", "final_score",
    "final_status_list", "time_settings", "time_left", "kgs-genmove_cleanup",
)


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


class GTPEngine:
    """The GTP state machine, independent of stdin/stdout so tests drive it directly.

    `player_factory(game_cfg)` builds the player for a board; it is called again when the
    board size or komi changes (a checkpoint for another size answers 'unacceptable size')."""

    def __init__(self, player_factory: Callable[[GameConfig], Player], game_cfg: GameConfig,
                 resign_threshold: float | None = None, name: str = "DPV"):
        self.factory = player_factory
        self.cfg = game_cfg
        self.resign_threshold = resign_threshold
        self.engine_name = name
        self.player = player_factory(game_cfg)
        self.game = make_game(game_cfg)
        self.state = self.game.new_state()
        self.finished = False  # after 'quit'

    # ------------------------------------------------------------------ plumbing
    def handle(self, line: str) -> str | None:
        """Answer one input line ('=id text\\n\\n' or '?id message\\n\\n'); None for blank lines."""
        line = "".join(ch for ch in line.replace("\t", " ") if ch >= " " or ch == "\n")
        line = line.split("#", 1)[0].strip()
        if not line:
            return None
        parts = line.split()
        ident = ""
        if parts[0].isdigit():
            ident = parts.pop(0)
            if not parts:
                return f"?{ident} missing command\n\n"
        cmd, args = parts[0], parts[1:]
        try:
            method = getattr(self, "cmd_" + cmd.replace("-", "_"), None) if cmd in COMMANDS else None
            if method is None:
                raise GTPFailure("unknown command")
            out = method(args)
        except GTPFailure as e:
            return f"?{ident} {e}\n\n"
        except DPVError as e:
            return f"?{ident} {e}\n\n"
        except Exception as e:  # a bug must not take a GUI's engine down: report it, go on
            traceback.print_exc(file=sys.stderr)
            return f"?{ident} internal error: {type(e).__name__}: {e}\n\n"
        return f"={ident} {out}\n\n" if out else f"={ident}\n\n"

    def serve(self, inp: TextIO, out: TextIO) -> None:
        for line in inp:
            answer = self.handle(line)
            if answer is not None:
                out.write(answer)
                out.flush()
            if self.finished:
                break

    def _size(self) -> int:
        return self.cfg.board_size

    def _new_game(self, cfg: GameConfig) -> None:
        """Switch board size / komi: a new player (for that board) and an empty board."""
        player = self.factory(cfg)  # raises before anything changes if the player refuses
        self.close_player()
        self.player, self.cfg = player, cfg
        self.game = make_game(cfg)
        self.state = self.game.new_state()

    def _replay(self, moves: list[int]) -> None:
        """Rebuild the position from moves, and the player's view of it (after undo etc.)."""
        self.state = self.game.new_state()
        self.player.reset()
        for a in moves:
            self.player.notify_move(self.state, a)
            self.state.apply(a)

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
        return __version__

    def cmd_known_command(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: known_command COMMAND")
        return "true" if args[0] in COMMANDS else "false"

    def cmd_list_commands(self, args):
        return "\n".join(COMMANDS)

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
            self._replay([])
        return ""

    def cmd_clear_board(self, args):
        self._replay([])
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
            moves = self.state.history()
            self._new_game(go_config(self.cfg.board_size, komi, self.cfg.history,
                                     self.cfg.max_game_length))
            self._replay(moves)
        return ""

    def cmd_time_settings(self, args):
        if len(args) != 3 or not all(a.isdigit() for a in args):
            raise GTPFailure("syntax error: time_settings MAIN BYO_YOMI STONES")
        return ""  # accepted; players search by simulations or FLOPs, not by clock

    def cmd_time_left(self, args):
        if len(args) != 3 or not args[1].isdigit() or not args[2].isdigit():
            raise GTPFailure("syntax error: time_left COLOR TIME STONES")
        _parse_colour(args[0])
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

    def cmd_genmove(self, args):
        if len(args) != 1:
            raise GTPFailure("syntax error: genmove COLOR")
        colour = _parse_colour(args[0])
        if self.state.is_terminal():
            return "pass"
        self._to_move(colour)
        if self.state.is_terminal():
            return "pass"
        try:
            action = int(self.player.select_move(self.state))
        except Resign:
            return "resign"
        value = self.player.last_move.root_value
        if self.resign_threshold is not None and value is not None and value < self.resign_threshold:
            return "resign"
        if not self.state.is_legal(action):
            raise GTPFailure(f"engine chose an illegal move ({action})")
        self._apply(action)
        return action_to_vertex(action, self._size())

    cmd_kgs_genmove_cleanup = cmd_genmove

    def cmd_undo(self, args):
        moves = self.state.history()
        if not moves:
            raise GTPFailure("cannot undo")
        self._replay(moves[:-1])
        return ""

    # ------------------------------------------------------------------ information
    def cmd_showboard(self, args):
        return "\n" + str(self.state.spiel_state).strip()

    def cmd_final_score(self, args):
        if self.state.is_terminal():
            return self.game.result(self.state).text
        return score_state(self.state).result  # the board as it stands, area scored

    def cmd_final_status_list(self, args):
        if len(args) != 1 or args[0] not in ("alive", "dead", "seki"):
            raise GTPFailure("syntax error: final_status_list alive|dead|seki")
        if args[0] != "alive":
            return ""  # area scoring of played-out games: no stone is dead
        black, white = self.game.stones(self.state.spiel_state)
        n = self._size()
        return " ".join(action_to_vertex(int(i), n) for i in (black | white).reshape(-1).nonzero()[0])


def _player_spec(args) -> str:
    if args.player and args.checkpoint:
        raise DPVError("give either --player or --checkpoint, not both")
    if args.player:
        return args.player
    if not args.checkpoint:
        raise DPVError("give --checkpoint PATH or --player SPEC (e.g. --player random)")
    opts = [f"mode={args.mode}"]
    for key in ("n_ref", "tau0", "alpha", "exit", "sims"):
        v = getattr(args, key)
        if v is not None:
            opts.append(f"{key}={v}")
    return f"net:{args.checkpoint}," + ",".join(opts)


def _board_of_checkpoint(path: str) -> GameConfig | None:
    from dpv.checkpoint import load_checkpoint
    from dpv.config import from_dict

    payload = load_checkpoint(path)
    try:
        return from_dict(GameConfig, payload["game"], "game")
    except (KeyError, DPVError):
        return None  # load_policy_value names the problem when the player is built


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dpv.gtp", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="policy-value checkpoint to play with")
    p.add_argument("--mode", default="fixed", help="exit mode: fixed, fixed_budget, dynamic, dynamic_static")
    p.add_argument("--n-ref", dest="n_ref", type=int, help="FLOPs budget in full-network simulations")
    p.add_argument("--tau0", type=float, help="confidence threshold at the start of a search")
    p.add_argument("--alpha", type=float, help="threshold growth with the budget used (tau0 + alpha*r)")
    p.add_argument("--exit", type=int, help="fixed exit index (-1 = deepest)")
    p.add_argument("--sims", type=int, help="simulations per move")
    p.add_argument("--player", help="any player spec instead of a checkpoint: random, mcts:sims=200, ...")
    p.add_argument("--board", type=int, help="initial board size (default: the checkpoint's, else 9)")
    p.add_argument("--komi", type=float, default=7.5)
    p.add_argument("--resign-threshold", type=float, default=None,
                   help="resign when the player's value estimate is below this (default: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--name", default="DPV")
    return p


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    spec = _player_spec(args)
    size = args.board
    if size is None:  # the checkpoint's board; one for another game is refused when built
        ck = _board_of_checkpoint(args.checkpoint) if args.checkpoint else None
        size = ck.board_size if ck is not None else GameConfig.board_size
    try:
        cfg = go_config(size, args.komi)
    except DPVError as e:
        raise DPVError(f"--board {size}: {e}") from None
    if args.resign_threshold is not None and not -1.0 <= args.resign_threshold <= 1.0:
        raise DPVError(f"--resign-threshold {args.resign_threshold} is outside [-1, 1]")
    from dpv.players.spec import make_player

    engine = GTPEngine(lambda c: make_player(spec, c, seed=args.seed, device=args.device), cfg,
                       resign_threshold=args.resign_threshold, name=args.name)
    try:
        engine.serve(sys.stdin, sys.stdout)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the controller went away
    finally:
        engine.close_player()


if __name__ == "__main__":
    main()
