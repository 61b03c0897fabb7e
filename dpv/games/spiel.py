"""Game adapters over OpenSpiel (`pyspiel`): Go with AlphaGo Zero history planes,
tic-tac-toe and connect four with (own, opponent, colour) planes.

Observation planes are always from the view of the player to move, so one network serves
both colours.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

import numpy as np
import pyspiel
from open_spiel.python.observation import make_observation

import dpv.games.symmetry as symmetry
from dpv.errors import ConfigError
from dpv.games.base import FIRST, SECOND, GameOutcome, GameState
from dpv.games.coords import action_to_vertex
from dpv.games.scoring import area_owner, final_result

if TYPE_CHECKING:  # the config names the game; validating it needs the registry, not us
    from dpv.config import GameConfig

Stones = tuple[np.ndarray, np.ndarray]  # (player 0 stones, player 1 stones), int8 (H, W)


class _Position:
    """One position of a game's history, shared by every state whose history holds it.

    Its board is computed only when an observation needs it, from `spiel`: a pyspiel state
    at this position that nobody mutates any more (or the owner's live state, which the
    owner freezes before it moves on)."""

    __slots__ = ("board", "spiel")  # board: ((2, H, W) stones, same with players swapped)

    def __init__(self, board, spiel):
        self.board = board
        self.spiel = spiel


class SpielState(GameState):
    """One position. Keeps the last `history` positions itself (pyspiel gives only the
    current one); their boards are built lazily, when `observation()` asks for them."""

    __slots__ = ("game", "_s", "_to_move", "_hist")

    def __init__(self, game: "SpielGame", s, to_move: int, hist: tuple):
        self.game = game
        self._s = s
        self._to_move = to_move
        self._hist = hist  # _Position, newest first, exactly game.history entries

    # --- protocol
    def current_player(self) -> int:
        return self._to_move

    def legal_actions(self) -> list[int]:
        return self._s.legal_actions()

    def legal_mask(self) -> np.ndarray:
        mask = np.zeros(self.game.num_actions, dtype=bool)
        mask[self._s.legal_actions()] = True
        return mask

    def is_legal(self, action: int) -> bool:
        return not self._s.is_terminal() and action in self._s.legal_actions()

    def apply(self, action: int) -> None:
        s = self._s
        hist = self._hist
        head = hist[0]
        if head.spiel is s:  # our position is still read from our live state: freeze it
            head.spiel = s.clone()
        s.apply_action(action)
        self._to_move ^= 1
        self._hist = (_Position(None, s),) + hist[:-1]

    def child(self, action: int) -> "SpielState":
        """`clone()` then `apply(action)`, in one step (what a search does per new node)."""
        s = self._s.child(action)
        return SpielState(self.game, s, self._to_move ^ 1, (_Position(None, s),) + self._hist[:-1])

    def clone(self) -> "SpielState":
        return SpielState(self.game, self._s.clone(), self._to_move, self._hist)

    def is_terminal(self) -> bool:
        return self._s.is_terminal()

    def returns(self) -> list[float]:
        return self._s.returns()

    def terminal_value(self) -> float:
        return float(self._s.returns()[self._to_move])

    def observation(self) -> np.ndarray:
        g = self.game
        h = g.history
        me = self._to_move
        planes = np.empty(g.observation_shape, dtype=np.float32)
        boards = []
        for pos in self._hist:
            board = pos.board
            if board is None:
                b = g.board(pos.spiel)  # (2, H, W): player 0's stones, player 1's
                board = pos.board = (b, b[::-1])  # and from player 1's view: own stones first
                pos.spiel = None  # the board is all history needs from now on
            boards.append(board[me])
        np.concatenate(boards, out=planes[:2 * h], casting="unsafe")
        # colour plane: 1 when the first player (Black, X) is to move
        planes[2 * h] = 1.0 if me == 0 else 0.0
        return planes

    def history(self) -> list[int]:
        return list(self._s.history())  # every state starts at pyspiel's initial state

    def playout(self, rng: np.random.Generator) -> list[float]:
        """Random play on a clone of the pyspiel state: no planes, no history bookkeeping."""
        s = self._s.clone()
        rand = rng.random
        while not s.is_terminal():
            legal = s.legal_actions()
            s.apply_action(legal[int(rand() * len(legal))])
        return s.returns()

    # --- extras
    @property
    def spiel_state(self):
        return self._s

    def move_number(self) -> int:
        return self._s.move_number()

    def __str__(self) -> str:
        return str(self._s)


class SpielGame:
    """A pyspiel game plus plane layout and symmetries."""

    def __init__(
        self,
        name: str,
        params: dict,
        stones: Callable[[np.ndarray], Stones],
        height: int,
        width: int,
        history: int,
        symmetries: tuple[int, ...],
        pass_action: int | None,
        outcome: Callable[["SpielState"], GameOutcome],
    ):
        self.name = name
        self._game = pyspiel.load_game(name, params)
        self.params = dict(params)
        self._stones_from_tensor = stones
        self.height, self.width = height, width
        self.history = history
        self.observation_shape = (2 * history + 1, height, width)
        self.num_actions = self._game.num_distinct_actions()
        self.symmetries = symmetries  # indices into symmetry.DIHEDRAL
        self.num_symmetries = len(symmetries)
        self.pass_action = pass_action
        self._outcome = outcome
        self._obs_shape = tuple(self._game.observation_tensor_shape())
        self._local = threading.local()
        # policy permutations per symmetry: over board points, or over columns (connect four)
        self._column_policy = self.num_actions == width and height != width

    @property
    def spiel_game(self):
        return self._game

    @property
    def max_game_length(self) -> int:
        return self._game.max_game_length()

    def board(self, s) -> np.ndarray:
        """The stones of both players as one int8 (2, H, W) array (player 0 first)."""
        return np.stack(self.stones(s))

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]  # per-thread observer buffers: rebuilt on first use
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _tensor(self, s) -> np.ndarray:
        """s.observation_tensor(0) as an array, read through a pyspiel observer's buffer
        (one per thread): no Python list of floats in between, ~1 us instead of ~8."""
        local = vars(self._local)  # this thread's own attributes
        obs = local.get("obs")
        if obs is None:
            obs = local["obs"] = make_observation(self._game)
        obs.set_from(s, 0)
        return obs.tensor.reshape(self._obs_shape)

    def stones(self, s) -> Stones:
        return self._stones_from_tensor(self._tensor(s))

    def new_state(self) -> SpielState:
        s = self._game.new_initial_state()
        zeros = np.zeros((2, self.height, self.width), np.int8)
        empty = _Position((zeros, zeros), None)
        # to move: Black, except after OpenSpiel's handicap stones (White)
        return SpielState(self, s, s.current_player(), (_Position(None, s),) + (empty,) * (self.history - 1))

    def state_from_actions(self, actions: list[int]) -> SpielState:
        st = self.new_state()
        for a in actions:
            st.apply(a)
        return st

    def transform_planes(self, planes: np.ndarray, sym: int) -> np.ndarray:
        return symmetry.transform_planes(planes, self.symmetries[sym])

    def transform_policy(self, policy: np.ndarray, sym: int) -> np.ndarray:
        d = self.symmetries[sym]
        if self._column_policy:  # connect four: only left-right flip acts on columns
            return np.ascontiguousarray(policy[..., ::-1]) if d != 0 else np.array(policy, copy=True)
        return symmetry.transform_policy(policy, self.height, self.width, d)

    def result(self, state: SpielState) -> GameOutcome:
        if not state.is_terminal():
            raise ValueError("the game is not over")
        return self._outcome(state)

    def final_ownership(self, state: SpielState) -> np.ndarray | None:
        """Go: the area-scoring owner of every point (Tromp-Taylor, as `result` scores it);
        the other games have no territory."""
        if self.name != "go":
            return None
        black, white = self.stones(state.spiel_state)
        return area_owner(black, white)

    def action_to_string(self, action: int) -> str:
        if self.name == "go":
            return action_to_vertex(action, self.height)
        return self._game.new_initial_state().action_to_string(0, action)


def _go_stones(t: np.ndarray) -> Stones:
    return t[0].astype(np.int8), t[1].astype(np.int8)


def _ttt_stones(t: np.ndarray) -> Stones:
    return t[2].astype(np.int8), t[1].astype(np.int8)  # planes: empty, nought (p1), cross (p0)


def _c4_stones(t: np.ndarray) -> Stones:
    return t[0].astype(np.int8), t[1].astype(np.int8)  # planes: p0, p1, empty


def _go_outcome(state: SpielState) -> GameOutcome:
    """Area score with komi, as OpenSpiel's returns have it (a superko ending is a draw)."""
    winner, margin, reason = final_result(state)
    return GameOutcome(winner, margin, "score" if reason == "two_passes" else reason)


def _returns_outcome(state: SpielState) -> GameOutcome:
    """Games without a score: the winner is whoever OpenSpiel's returns favour."""
    r = state.returns()
    winner = FIRST if r[FIRST] > r[SECOND] else SECOND if r[SECOND] > r[FIRST] else None
    return GameOutcome(winner, None, "score")


ALL_DIHEDRAL = tuple(range(8))
LEFT_RIGHT = (0, 4)  # identity and the plain left-right flip in symmetry.DIHEDRAL


def make_game(cfg: GameConfig) -> SpielGame:
    """Build the game a config names (the config is already validated)."""
    if cfg.name == "go":
        n = cfg.board_size
        length = cfg.max_game_length or 4 * n * n
        params = {"board_size": n, "komi": float(cfg.komi), "max_game_length": length}
        if cfg.handicap:
            params["handicap"] = cfg.handicap
        return SpielGame("go", params, _go_stones, n, n, cfg.history, ALL_DIHEDRAL,
                         pass_action=n * n, outcome=_go_outcome)
    if cfg.name == "tic_tac_toe":
        return SpielGame("tic_tac_toe", {}, _ttt_stones, 3, 3, 1, ALL_DIHEDRAL,
                         pass_action=None, outcome=_returns_outcome)
    if cfg.name == "connect_four":
        return SpielGame("connect_four", {}, _c4_stones, 6, 7, 1, LEFT_RIGHT,
                         pass_action=None, outcome=_returns_outcome)
    raise ConfigError(f"game.name: unknown game {cfg.name!r}")
