"""Gymnasium environment over the same Go adapter: `gymnasium.make("dpv/Go-v0", board_size=9)`.

The agent plays one colour against a pluggable opponent (any callable state -> action, or a
Player; uniform random by default). Observations are the 17 AlphaGo Zero planes (C, H, W) from
the agent's view; `info["action_mask"]` (int8, like PettingZoo's go_v5) marks legal moves.
An illegal action ends the episode with reward -1 and `info["illegal_action"] = True`.
Reward: +1 / -1 / 0 for the agent at the end of the game.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dpv.config import GameConfig, from_dict
from dpv.games.base import GameState
from dpv.games.spiel import make_game
from dpv.players.base import Player

Opponent = Union[Callable[[GameState], int], Player]


def pettingzoo_layout(planes: np.ndarray) -> np.ndarray:
    """(C, H, W) planes -> PettingZoo go_v5's (H, W, C) layout."""
    return np.moveaxis(planes, 0, -1)


class GoEnv(gym.Env):
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, board_size: int = 9, komi: float = 7.5, agent_color: str = "black",
                 opponent: Opponent | None = None, max_game_length: int | None = None,
                 render_mode: str | None = None):
        self.game_cfg = from_dict(GameConfig, {"name": "go", "board_size": board_size, "komi": komi,
                                               "max_game_length": max_game_length}, "env")
        if agent_color not in ("black", "white"):
            raise ValueError(f"agent_color must be 'black' or 'white', got {agent_color!r}")
        self.game = make_game(self.game_cfg)
        self.agent = 0 if agent_color == "black" else 1
        # a Player is asked through its protocol; any other opponent is a plain callable
        self._opponent: Callable[[GameState], int] | None = (
            opponent.select_move if isinstance(opponent, Player) else opponent)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, self.game.observation_shape, dtype=np.float32)
        self.action_space = spaces.Discrete(self.game.num_actions)
        self.state = self.game.new_state()

    def _opponent_move(self) -> int:
        if self._opponent is None:
            return int(self.np_random.choice(self.state.legal_actions()))
        return int(self._opponent(self.state))

    def _play_opponent(self) -> None:
        while not self.state.is_terminal() and self.state.current_player() != self.agent:
            self.state.apply(self._opponent_move())

    def _info(self, **extra) -> dict:
        return {"action_mask": self.state.legal_mask().astype(np.int8), **extra}

    def _reward(self) -> float:
        return float(self.state.returns()[self.agent]) if self.state.is_terminal() else 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.game.new_state()
        self._play_opponent()
        return self.state.observation(), self._info()

    def step(self, action):
        action = int(action)
        if not self.state.is_legal(action):
            return self.state.observation(), -1.0, True, False, self._info(illegal_action=True)
        self.state.apply(action)
        self._play_opponent()
        terminated = self.state.is_terminal()
        return self.state.observation(), self._reward(), terminated, False, self._info()

    def render(self):
        return str(self.state)

