"""The multi-exit network protocol shared by policy-value nets and classifiers.

A network is a stem, a list of stages and one head per stage (exit k sits after stage k).
Three ways to run it:
  * `forward(x)`          -> outputs of every exit (training);
  * `forward_to(x, k)`    -> output of exit k only; stages after k are never computed;
  * `staged_forward(...)` -> stage by stage, a caller-supplied rule stops rows at each exit,
                             and stopped rows leave the batch so they cost nothing more.
Head outputs are a tensor or a NamedTuple of tensors, batch first.

`MultiExitModel` is the protocol the exit runners and the evaluator call; `MultiExitNet` is
the base class the policy-value net and the classifiers build on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn


class FlopsTable(NamedTuple):
    """Analytic FLOPs (2 x multiply-accumulates of conv and linear layers) per part."""

    stem: float
    stages: tuple[float, ...]
    heads: tuple[float, ...]

    def fixed(self, k: int) -> float:
        """Cost of `forward_to(x, k)`: stem + stages 0..k + head k."""
        return self.stem + sum(self.stages[: k + 1]) + self.heads[k]

    def staged(self, k: int) -> float:
        """Cost of stopping at exit k in a staged forward: every head up to k was computed."""
        return self.stem + sum(self.stages[: k + 1]) + sum(self.heads[: k + 1])

    def fixed_all(self) -> npt.NDArray[np.float64]:
        return np.array([self.fixed(k) for k in range(len(self.heads))], dtype=np.float64)

    def staged_all(self) -> npt.NDArray[np.float64]:
        return np.array([self.staged(k) for k in range(len(self.heads))], dtype=np.float64)


# stop(k, head output, active row ids) -> bool mask over the active rows: those exiting at k
StopRule = Callable[[int, Any, torch.Tensor], Any]


class MultiExitModel(Protocol):
    """What runs a multi-exit network: its exits, the three forwards, their FLOPs."""

    @property
    def num_exits(self) -> int: ...

    def forward_to(self, x: torch.Tensor, k: int) -> Any:
        """Output of exit k only; stages after k are never computed."""
        ...

    def staged_forward(self, x: torch.Tensor, stop: StopRule) -> StagedResult:
        """Stage by stage; rows that `stop` stops at an exit leave the batch."""
        ...

    def flops(self) -> FlopsTable: ...


def _map(out: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(out, torch.Tensor):
        return fn(out)
    return type(out)(*(fn(t) for t in out))


class MultiExitNet(nn.Module):
    """Base class: subclasses set `stem`, `stages` (ModuleList) and `heads` (ModuleList)."""

    stem: nn.Module
    stages: nn.ModuleList
    heads: nn.ModuleList

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], heads: Sequence[nn.Module]):
        super().__init__()
        if len(stages) != len(heads):
            raise ValueError("one head per stage")
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        self._flops: FlopsTable | None = None

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        raise NotImplementedError

    # ---- three ways to run
    def forward(self, x: torch.Tensor) -> list[Any]:
        h = self.stem(x)
        outs = []
        for stage, head in zip(self.stages, self.heads):
            h = stage(h)
            outs.append(head(h))
        return outs

    def forward_to(self, x: torch.Tensor, k: int) -> Any:
        k = self._check_exit(k)
        h = self.stem(x)
        for stage in self.stages[: k + 1]:
            h = stage(h)
        return self.heads[k](h)

    def staged_forward(self, x: torch.Tensor, stop: StopRule) -> StagedResult:
        """Run stage by stage; `stop(k, head_out, rows)` gives a bool mask over the active
        rows (`rows` are their indices in x) of those that exit at k. The last exit takes all."""
        n = x.shape[0]
        rows = torch.arange(n, device=x.device)
        exit_index = torch.full((n,), -1, dtype=torch.long, device=x.device)
        collected: list[tuple[torch.Tensor, Any]] = []
        h = self.stem(x)
        last = self.num_exits - 1
        for k, (stage, head) in enumerate(zip(self.stages, self.heads)):
            h = stage(h)
            out = head(h)
            if k == last:
                done = torch.ones(rows.shape[0], dtype=torch.bool, device=x.device)
            else:
                done = torch.as_tensor(stop(k, out, rows), dtype=torch.bool, device=x.device)
            if done.any():
                collected.append((rows[done], _map(out, lambda t: t[done])))
                exit_index[rows[done]] = k
            if k == last or done.all():
                break
            keep = ~done
            if not keep.all():  # stopped rows leave the batch: the saved compute is real
                h, rows = h[keep], rows[keep]
        return StagedResult(_gather(collected, n), exit_index)

    def _check_exit(self, k: int) -> int:
        if k < 0:
            k += self.num_exits
        if not 0 <= k < self.num_exits:
            raise ValueError(f"exit {k} does not exist (the network has {self.num_exits} exits)")
        return k

    # ---- FLOPs
    def flops(self) -> FlopsTable:
        if self._flops is None:
            self._flops = count_flops(self)
        return self._flops

    def exit_params(self) -> list[int]:
        """Parameters used by `forward_to(k)`: stem + stages 0..k + head k."""
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        base = count(self.stem)
        out = []
        for k in range(self.num_exits):
            base += count(self.stages[k])
            out.append(base + count(self.heads[k]))
        return out


@dataclass
class StagedResult:
    outputs: Any  # same structure as a head output, rows in input order
    exit_index: torch.Tensor  # (B,) exit each row stopped at


def _gather(collected: list[tuple[torch.Tensor, Any]], n: int) -> Any:
    first = collected[0][1]

    def assemble(pick: Callable[[Any], torch.Tensor]) -> torch.Tensor:
        proto = pick(first)
        out = proto.new_empty((n,) + tuple(proto.shape[1:]))
        for idx, o in collected:
            out[idx] = pick(o)
        return out

    if isinstance(first, torch.Tensor):
        return assemble(lambda o: o)

    def field(i: int) -> Callable[[Any], torch.Tensor]:
        return lambda o: o[i]

    return type(first)(*(assemble(field(i)) for i in range(len(first))))


def _module_flops(module: nn.Module, inp: torch.Tensor) -> tuple[float, Any]:
    """2 x MACs of every Conv2d / Linear in `module` for one sample; BN/ReLU/adds ignored."""
    total = [0.0]

    def conv_hook(m: nn.Conv2d, args: Any, out: torch.Tensor) -> None:
        kh, kw = m.kernel_size
        macs = out.shape[1] * out.shape[2] * out.shape[3] * (m.in_channels // m.groups) * kh * kw
        total[0] += 2.0 * macs

    def linear_hook(m: nn.Linear, args: Any, out: torch.Tensor) -> None:
        total[0] += 2.0 * m.in_features * m.out_features * (out.numel() // out.shape[-1]) / out.shape[0]

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        out = module(inp)
    finally:
        for h in handles:
            h.remove()
    return total[0], out


@torch.no_grad()
def count_flops(net: MultiExitNet) -> FlopsTable:
    was_training = net.training
    net.eval()
    try:
        x = net.example_input(1)
        stem, h = _module_flops(net.stem, x)
        stages, heads = [], []
        for stage, head in zip(net.stages, net.heads):
            f, h = _module_flops(stage, h)
            stages.append(f)
            heads.append(_module_flops(head, h)[0])
    finally:
        net.train(was_training)
    return FlopsTable(stem, tuple(stages), tuple(heads))
