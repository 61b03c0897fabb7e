"""AlphaZero-style policy-value ResNet with an exit (policy + value head) after chosen blocks."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from dpv.config import NetConfig
from dpv.nets.multi_exit import MultiExitNet


class PolicyValue(NamedTuple):
    policy_logits: torch.Tensor  # (B, num_actions)
    value: torch.Tensor  # (B,) in [-1, 1], from the view of the player to move


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class PolicyValueHead(nn.Module):
    """AlphaGo Zero heads: 1x1 conv -> FC for the policy; 1x1 conv -> FC -> FC -> tanh for value."""

    def __init__(self, channels: int, board_points: int, num_actions: int,
                 policy_channels: int = 2, value_hidden: int = 256):
        super().__init__()
        self.policy_conv = nn.Conv2d(channels, policy_channels, 1, bias=False)
        self.policy_bn = nn.BatchNorm2d(policy_channels)
        self.policy_fc = nn.Linear(policy_channels * board_points, num_actions)
        self.value_conv = nn.Conv2d(channels, 1, 1, bias=False)
        self.value_bn = nn.BatchNorm2d(1)
        self.value_fc1 = nn.Linear(board_points, value_hidden)
        self.value_fc2 = nn.Linear(value_hidden, 1)

    def forward(self, h: torch.Tensor) -> PolicyValue:
        p = F.relu(self.policy_bn(self.policy_conv(h))).flatten(1)
        v = F.relu(self.value_bn(self.value_conv(h))).flatten(1)
        v = torch.tanh(self.value_fc2(F.relu(self.value_fc1(v)))).squeeze(-1)
        return PolicyValue(self.policy_fc(p), v)


class PolicyValueNet(MultiExitNet):
    def __init__(self, cfg: NetConfig, in_planes: int, height: int, width: int, num_actions: int):
        c = cfg.channels
        stem = nn.Sequential(nn.Conv2d(in_planes, c, 3, padding=1, bias=False),
                             nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        bounds = (0,) + tuple(cfg.exits)
        stages = [nn.Sequential(*(ResidualBlock(c) for _ in range(b - a)))
                  for a, b in zip(bounds[:-1], bounds[1:])]
        heads = [PolicyValueHead(c, height * width, num_actions, cfg.policy_channels, cfg.value_hidden)
                 for _ in cfg.exits]
        super().__init__(stem, stages, heads)
        self.config = cfg
        self.input_shape = (in_planes, height, width)
        self.num_actions = num_actions

    def example_input(self, batch: int = 1) -> torch.Tensor:
        p = next(self.parameters())
        return torch.zeros((batch,) + self.input_shape, dtype=p.dtype, device=p.device)

    @property
    def exit_blocks(self) -> tuple[int, ...]:
        return tuple(self.config.exits)


def build_policy_value_net(net_cfg: NetConfig, game) -> PolicyValueNet:
    c, h, w = game.observation_shape
    return PolicyValueNet(net_cfg, c, h, w, game.num_actions)
