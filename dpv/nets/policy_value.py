"""AlphaZero-style policy-value ResNet with an exit (policy + value head) after chosen blocks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dpv.config import NetConfig
from dpv.errors import ConfigError
from dpv.games.base import FIRST, GameState
from dpv.nets.multi_exit import MultiExitNet


class PolicyValue(NamedTuple):
    """One exit's outputs. The auxiliary heads (net.aux_heads) are None on exits without them."""

    policy_logits: torch.Tensor  # (B, num_actions)
    value: torch.Tensor  # (B,) in [-1, 1], from the view of the player to move
    # (B, H*W) in [-1, 1]: final owner of each point (plane layout, row-major), +1 = the mover
    ownership: torch.Tensor | None = None
    score: torch.Tensor | None = None  # (B,) final margin in points, + = the mover ahead


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
    """AlphaGo Zero heads: 1x1 conv -> FC for the policy; 1x1 conv -> FC -> FC -> tanh for value.

    With `aux`, two KataGo-style heads beside them: ownership, a 1x1 conv of the trunk to
    one plane -> tanh (each point's final owner); score, a linear read of the value head's
    hidden layer, in units of the board's points (so its raw output is about [-1, 1] like
    the value) -> the mean final margin in points."""

    def __init__(self, channels: int, board_points: int, num_actions: int,
                 policy_channels: int = 2, value_hidden: int = 256, aux: bool = False):
        super().__init__()
        self.policy_conv = nn.Conv2d(channels, policy_channels, 1, bias=False)
        self.policy_bn = nn.BatchNorm2d(policy_channels)
        self.policy_fc = nn.Linear(policy_channels * board_points, num_actions)
        self.value_conv = nn.Conv2d(channels, 1, 1, bias=False)
        self.value_bn = nn.BatchNorm2d(1)
        self.value_fc1 = nn.Linear(board_points, value_hidden)
        self.value_fc2 = nn.Linear(value_hidden, 1)
        self.board_points = board_points
        self.aux = aux
        if aux:
            self.ownership_conv = nn.Conv2d(channels, 1, 1)
            self.score_fc = nn.Linear(value_hidden, 1)

    def forward(self, h: torch.Tensor) -> PolicyValue:
        p = F.relu(self.policy_bn(self.policy_conv(h))).flatten(1)
        v = F.relu(self.value_bn(self.value_conv(h))).flatten(1)
        hidden = F.relu(self.value_fc1(v))
        v = torch.tanh(self.value_fc2(hidden)).squeeze(-1)
        if not self.aux:
            return PolicyValue(self.policy_fc(p), v)
        ownership = torch.tanh(self.ownership_conv(h)).flatten(1)
        score = self.score_fc(hidden).squeeze(-1) * self.board_points
        return PolicyValue(self.policy_fc(p), v, ownership, score)


class PolicyValueNet(MultiExitNet):
    def __init__(self, cfg: NetConfig, in_planes: int, height: int, width: int, num_actions: int):
        c = cfg.channels
        stem = nn.Sequential(nn.Conv2d(in_planes, c, 3, padding=1, bias=False),
                             nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        bounds = (0,) + tuple(cfg.exits)
        stages = [nn.Sequential(*(ResidualBlock(c) for _ in range(b - a)))
                  for a, b in zip(bounds[:-1], bounds[1:])]
        heads = [PolicyValueHead(c, height * width, num_actions, cfg.policy_channels, cfg.value_hidden,
                                 aux=cfg.has_aux(k))
                 for k in range(len(cfg.exits))]
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
    """The network of `net_cfg` for `game`; aux heads only for a game with ownership (Go)."""
    if net_cfg.aux_heads != "none" and game.final_ownership(game.new_state()) is None:
        raise ConfigError(f"net.aux_heads: {net_cfg.aux_heads!r} needs a game with territory "
                          f"and a score (Go); {game.name} has neither (use none)")
    c, h, w = game.observation_shape
    return PolicyValueNet(net_cfg, c, h, w, game.num_actions)


@dataclass(frozen=True)
class AuxPrediction:
    """What the auxiliary heads say of one position, from the mover's view as trained."""

    mover: int  # player to move (0 = Black)
    value: float  # in [-1, 1], the mover's
    ownership: np.ndarray  # (H, W) float32 in [-1, 1], plane layout: +1 = the mover owns it
    score: float  # the mover's expected final margin in points (komi counted)

    @property
    def black_ownership(self) -> np.ndarray:
        """Ownership with +1 = Black (row 0 = rank 1, as Go's actions: index = row * W + col)."""
        return self.ownership if self.mover == FIRST else -self.ownership

    @property
    def black_score(self) -> float:
        """Black's expected margin (Black - White - komi), as GameOutcome.margin."""
        return self.score if self.mover == FIRST else -self.score


def has_aux(net: PolicyValueNet, k: int = -1) -> bool:
    """Whether exit k (default the deepest) has the ownership and score heads."""
    return net.config.has_aux(k % net.num_exits)


@torch.no_grad()
def predict_aux(net: PolicyValueNet, states: Sequence[GameState], k: int = -1) -> list[AuxPrediction]:
    """Ownership, score and value of each position from exit k (one batched forward_to, in
    eval mode); ValueError if that exit has no aux heads (see `has_aux`)."""
    k %= net.num_exits
    if not net.config.has_aux(k):
        raise ValueError(f"exit {k} of this network has no ownership/score heads "
                         f"(net.aux_heads is {net.config.aux_heads!r})")
    if not states:
        return []
    p = next(net.parameters())
    x = torch.from_numpy(np.stack([st.observation() for st in states])).to(p.device, p.dtype)
    was_training = net.training
    net.eval()
    try:
        out = net.forward_to(x, k)
    finally:
        net.train(was_training)
    assert out.ownership is not None and out.score is not None
    _, h, w = net.input_shape
    own = out.ownership.float().cpu().numpy().reshape(-1, h, w)
    score, value = out.score.float().cpu().numpy(), out.value.float().cpu().numpy()
    return [AuxPrediction(st.current_player(), float(value[i]), own[i], float(score[i]))
            for i, st in enumerate(states)]
