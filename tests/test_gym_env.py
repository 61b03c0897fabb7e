import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dpv  # noqa: F401  (registers dpv/Go-v0)
from dpv.envs import pettingzoo_layout


def test_env_passes_gymnasium_checker():
    env = gym.make("dpv/Go-v0", board_size=5)
    check_env(env.unwrapped, skip_render_check=True)


def test_env_plays_a_game_with_mask_and_pluggable_opponent():
    calls = []

    def opponent(state):
        calls.append(1)
        return state.legal_actions()[-1]  # always pass when legal (pass is the last action)

    env = gym.make("dpv/Go-v0", board_size=5, opponent=opponent, agent_color="white")
    obs, info = env.reset(seed=0)
    assert obs.shape == (17, 5, 5) and info["action_mask"].dtype == np.int8
    assert len(calls) == 1  # black (the opponent) moved first
    rng = np.random.default_rng(0)
    done, reward = False, 0.0
    while not done:
        legal = np.flatnonzero(info["action_mask"][:-1])  # never pass: the game ends on passes
        action = rng.choice(legal) if len(legal) else 25
        obs, reward, done, trunc, info = env.step(action)
    assert reward in (-1.0, 1.0)
    assert pettingzoo_layout(obs).shape == (5, 5, 17)


def test_illegal_action_ends_the_episode():
    env = gym.make("dpv/Go-v0", board_size=5)
    env.reset(seed=0)
    env.step(12)
    obs, reward, done, trunc, info = env.step(12)  # occupied point
    assert done and reward == -1.0 and info["illegal_action"]


def test_env_rejects_unsupported_board_size():
    from dpv.errors import ConfigError
    with pytest.raises(ConfigError, match="board_size"):
        gym.make("dpv/Go-v0", board_size=8)
