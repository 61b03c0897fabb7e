"""Multi-exit classifiers on dpv's MultiExitNet protocol (stem, stages, one head per stage).

Heads emit `num_classes` logits, plus one damping neuron (thesis eq. 4.4) when the loss needs
it; `class_logits` drops that neuron, so inference and traces only ever see the classes.
FLOPs per exit come from `MultiExitNet.flops()`, the same accounting as the policy-value net.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dpv.nets.multi_exit import MultiExitNet

from eexit_vision.config import ModelConfig


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class GlobalAvgPool(nn.Module):
    # a plain mean: unlike AdaptiveAvgPool2d its CUDA backward is deterministic
    def forward(self, x):
        return x.mean(dim=(2, 3))


class PoolLinearHead(nn.Sequential):
    """Global average pool + linear: the cheapest exit that reads a whole feature map."""

    def __init__(self, channels: int, outputs: int):
        super().__init__(GlobalAvgPool(), nn.Linear(channels, outputs))


class Classifier(MultiExitNet):
    """A multi-exit classifier: knows its input shape, class count and damping neuron."""

    def __init__(self, stem, stages, heads, input_shape: Sequence[int], num_classes: int,
                 extra_outputs: int, name: str):
        super().__init__(stem, stages, heads)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.extra_outputs = extra_outputs
        self.name = name

    def example_input(self, batch: int = 1) -> torch.Tensor:
        p = next(self.parameters())
        return torch.zeros((batch,) + self.input_shape, dtype=p.dtype, device=p.device)

    def class_logits(self, out: torch.Tensor) -> torch.Tensor:
        return out[..., : self.num_classes]


class DigitsCNN(Classifier):
    """Four conv stages (two of them downsampling), an exit after each: for 8x8 digits."""

    def __init__(self, input_shape, num_classes: int, extra_outputs: int = 0, width: int = 32):
        c = input_shape[0]
        w = [width, 2 * width, 2 * width, 4 * width]
        stem = conv_bn_relu(c, width)
        stages = [conv_bn_relu(width, w[0]), conv_bn_relu(w[0], w[1], 2),
                  conv_bn_relu(w[1], w[2]), conv_bn_relu(w[2], w[3], 2)]
        heads = [PoolLinearHead(ch, num_classes + extra_outputs) for ch in w]
        super().__init__(stem, stages, heads, input_shape, num_classes, extra_outputs, "digits_cnn")


class ConvPoolHead(nn.Sequential):
    """MSDNet-style exit, scaled down: a strided 3x3 conv (mixes space before pooling, so an
    early exit sees more than channel means), BN, ReLU, global average pool, linear."""

    def __init__(self, channels: int, outputs: int):
        super().__init__(conv_bn_relu(channels, channels, 2), GlobalAvgPool(), nn.Linear(channels, outputs))


class FashionCNN(Classifier):
    """Four stages for 28x28 images, an exit after each: one conv at full resolution, then
    two convs per stage at 14x14, 7x7 and 7x7 (width, 2x, 4x, 4x channels)."""

    def __init__(self, input_shape, num_classes: int, extra_outputs: int = 0, width: int = 16):
        c = input_shape[0]
        w = [width, 2 * width, 4 * width, 4 * width]
        stem = conv_bn_relu(c, width)
        stages = [conv_bn_relu(width, w[0]),
                  nn.Sequential(conv_bn_relu(w[0], w[1], 2), conv_bn_relu(w[1], w[1])),
                  nn.Sequential(conv_bn_relu(w[1], w[2], 2), conv_bn_relu(w[2], w[2])),
                  nn.Sequential(conv_bn_relu(w[2], w[3]), conv_bn_relu(w[3], w[3]))]
        heads = [ConvPoolHead(ch, num_classes + extra_outputs) for ch in w]
        super().__init__(stem, stages, heads, input_shape, num_classes, extra_outputs, "fashion_cnn")


class BasicBlock(nn.Module):
    """ResNet basic block (post-activation, He et al. 2016), projection shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def default_exits(blocks: int) -> tuple[int, ...]:
    """Exits at the end of each of the three resolution groups (or after every block if fewer)."""
    if blocks < 3:
        return tuple(range(1, blocks + 1))
    sizes = group_sizes(blocks)
    return tuple(sum(sizes[: g + 1]) for g in range(3))


def group_sizes(blocks: int) -> list[int]:
    base, extra = divmod(blocks, 3)
    return [base + (1 if g < extra else 0) for g in range(3)]


class ExitResNet(Classifier):
    """CIFAR ResNet (three groups: width, 2x, 4x channels; stride 2 between groups) with exits
    after the configured blocks; each stage is the run of blocks between two exits."""

    def __init__(self, input_shape, num_classes: int, extra_outputs: int = 0, width: int = 16,
                 blocks: int = 6, exits: Sequence[int] = ()):
        exits = tuple(exits) or default_exits(blocks)
        block_list: list[nn.Module] = []
        channels: list[int] = []
        cin = width
        for g, n in enumerate(group_sizes(blocks) if blocks >= 3 else [blocks]):
            cout = width * 2 ** g
            for i in range(n):
                block_list.append(BasicBlock(cin, cout, 2 if (g > 0 and i == 0) else 1))
                channels.append(cout)
                cin = cout
        stem = conv_bn_relu(input_shape[0], width)
        stages, heads, start = [], [], 0
        for e in exits:
            stages.append(nn.Sequential(*block_list[start:e]))
            heads.append(PoolLinearHead(channels[e - 1], num_classes + extra_outputs))
            start = e
        super().__init__(stem, stages, heads, input_shape, num_classes, extra_outputs, "resnet")
        self.exit_blocks = exits


class ResidualLayer(nn.Module):
    """h -> h + f(h) with a pre-activation residual f, kept pure so ||f(h)|| is the step size."""

    def __init__(self, channels: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1, bias=False))

    def forward(self, h):
        return h + self.f(h)


class ASTIResNet(Classifier):
    """ASTI-style residual net (optimal-depth-asti.txt): constant width, `h_{t+1} = h_t + f_t(h_t)`,
    one exit per layer, all exits sharing one linear head g (the same module in every slot)."""

    def __init__(self, input_shape, num_classes: int, extra_outputs: int = 0, width: int = 32,
                 blocks: int = 8):
        stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False))
        layers = [ResidualLayer(width) for _ in range(blocks)]
        shared = PoolLinearHead(width, num_classes + extra_outputs)
        super().__init__(stem, layers, [shared] * blocks, input_shape, num_classes, extra_outputs,
                         "asti_resnet")

    def forward_residuals(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """All exits' outputs and, per layer t, the per-sample squared norm ||f_t(h_t)||^2."""
        h = self.stem(x)
        outs, sq_norms = [], []
        for layer, head in zip(self.stages, self.heads):
            r = layer.f(h)
            sq_norms.append(r.flatten(1).pow(2).sum(1))
            h = h + r
            outs.append(head(h))
        return outs, sq_norms


def build_model(cfg: ModelConfig, input_shape: Sequence[int], num_classes: int,
                extra_outputs: int = 0) -> Classifier:
    if cfg.name == "digits_cnn":
        return DigitsCNN(input_shape, num_classes, extra_outputs, cfg.width)
    if cfg.name == "fashion_cnn":
        return FashionCNN(input_shape, num_classes, extra_outputs, cfg.width)
    if cfg.name == "resnet":
        return ExitResNet(input_shape, num_classes, extra_outputs, cfg.width, cfg.blocks, cfg.exits)
    return ASTIResNet(input_shape, num_classes, extra_outputs, cfg.width, cfg.blocks)
