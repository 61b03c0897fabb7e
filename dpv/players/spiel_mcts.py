"""OpenSpiel's C++ MCTS with random rollouts: the classic baseline opponent."""
from __future__ import annotations

import time

import pyspiel

from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games.base import GameState
from dpv.games.spiel import SpielState, make_game
from dpv.players.base import MoveInfo, Player


class SpielMCTSPlayer(Player):
    """`pyspiel.MCTSBot` (UCT) with `pyspiel.RandomRolloutEvaluator`.

    The C++ bot searches from the state it is given, so notify only forwards the move
    (`inform_action`) to keep the bot's view in step with the game."""

    def __init__(self, game_cfg: GameConfig, sims: int = 1000, uct_c: float = 2.0,
                 rollouts: int = 1, solve: bool = False, seed: int = 0, name: str | None = None,
                 max_memory_mb: int = 1000):
        self.name = name or f"mcts(sims={sims})"
        self.sims = sims
        self._game = make_game(game_cfg).spiel_game
        self._evaluator = pyspiel.RandomRolloutEvaluator(rollouts, seed)
        self._bot = pyspiel.MCTSBot(self._game, self._evaluator, uct_c, sims, max_memory_mb,
                                    solve, seed, False)
        self.last_move = MoveInfo()

    def reset(self) -> None:
        self._bot.restart()

    def select_move(self, state: GameState) -> int:
        if not isinstance(state, SpielState):
            raise DPVError(f"{self.name} plays only OpenSpiel-backed states")
        t0 = time.perf_counter()
        action = int(self._bot.step(state.spiel_state))
        self.last_move = MoveInfo(seconds=time.perf_counter() - t0, simulations=self.sims)
        return action

    def notify_move(self, state: GameState, action: int) -> None:
        if isinstance(state, SpielState):
            self._bot.inform_action(state.spiel_state, state.spiel_state.current_player(), action)
