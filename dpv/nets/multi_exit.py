"""The multi-exit network protocol shared by policy-value nets and classifiers.

A network is a stem, a list of stages and one head per stage (exit k sits after stage k).
Three ways to run it:
  * `forward(x)`          -> outputs of every exit (training);
  * `forward_to(x, k)`    -> output of exit k only; stages after k are never computed;
  * `staged_forward(...)` -> stage by stage, a caller-supplied rule stops rows at each exit,
                             and stopped rows leave the batch so they cost nothing more;
                             it keeps every exit's outputs (recall policies answer from an
                             earlier exit) and never reads a decision on the host, except
                             one row count per exit where it compacts the batch.
Head outputs are a tensor, a NamedTuple/tuple or a dict of tensors, batch first.

`MultiExitModel` is the protocol the exit runners and the evaluator call; `MultiExitNet` is
the base class the policy-value net and the classifiers build on.
"""
from __future__ import annotations

import functools
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


# stop(k, head output, row ids in the batch) -> bool mask over those rows: the ones exiting at k
StopRule = Callable[[int, Any, torch.Tensor], Any]


class MultiExitModel(Protocol):
    """What runs a multi-exit network: its exits, the three forwards, their FLOPs."""

    @property
    def num_exits(self) -> int: ...

    def forward_to(self, x: torch.Tensor, k: int) -> Any:
        """Output of exit k only; stages after k are never computed."""
        ...

    def staged_forward(self, x: torch.Tensor, stop: StopRule,
                       keep_exited: Sequence[bool] | None = None) -> StagedResult:
        """Stage by stage; rows that `stop` stops at an exit leave the batch (or, where
        `keep_exited[k]`, stay in it masked)."""
        ...

    def flops(self) -> FlopsTable: ...


def map_output(out: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor of a head output (other parts, such as None, stay)."""

    def apply(part: Callable[[Any], Any]) -> Any:
        t = part(out)
        return fn(t) if isinstance(t, torch.Tensor) else t

    return _map_parts(out, apply)


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

    def staged_forward(self, x: torch.Tensor, stop: StopRule,
                       keep_exited: Sequence[bool] | None = None) -> StagedResult:
        """Run stage by stage; `stop(k, head_out, rows)` gives a bool mask over the rows in
        the batch (`rows`: their indices in x) of those that exit at k; the last exit takes
        all. The mask may stay on the device: nothing here reads it on the host.

        Stopped rows leave the batch by one index computation per exit, the exit's one host
        sync (how many rows go on). Where `keep_exited[k]` is True they stay in the batch
        instead, masked: no sync, their later outputs are computed and never used, and
        `stop`'s answers for them are ignored (dpv.nets.compaction chooses by measured cost)."""
        n = x.shape[0]
        dev = x.device
        last = self.num_exits - 1
        rows = torch.arange(n, device=dev)
        exit_index = torch.full((n,), last, dtype=torch.long, device=dev)
        running: torch.Tensor | None = None  # over the batch: not stopped yet (None: all)
        outs: list[Any] = []
        at: list[torch.Tensor] = []
        h = self.stem(x)
        for k, (stage, head) in enumerate(zip(self.stages, self.heads)):
            h = stage(h)
            out = head(h)
            outs.append(out)
            at.append(rows)
            if k == last:
                break
            done = torch.as_tensor(stop(k, out, rows), dtype=torch.bool, device=dev)
            if running is not None:
                done = done & running
            exit_index.index_copy_(0, rows, torch.where(done, k, exit_index.index_select(0, rows)))
            still = ~done if running is None else running & ~done
            if keep_exited is not None and keep_exited[k]:
                running = still
                continue
            keep = torch.nonzero(still).view(-1)  # the exit's one host sync
            if keep.numel() == 0:
                break
            if keep.numel() < rows.numel():  # stopped rows leave the batch: the saved compute is real
                h, rows = _take_rows(h, keep), rows.index_select(0, keep)
            running = None
        return StagedResult(outs, at, exit_index)

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


def _take_rows(h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Rows `keep` of the hidden state, in the memory format it had (channels_last stays)."""
    out = h.index_select(0, keep)
    if h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


@dataclass
class StagedResult:
    """What a staged forward computed: every exit's head output for the rows in the batch
    at that exit, and the exit each row stopped at. Nothing here has left the device."""

    exit_outputs: list[Any]  # per exit reached: head output for the rows in `exit_rows[k]`
    exit_rows: list[torch.Tensor]  # per exit reached: ids of its rows in the input (ascending)
    exit_index: torch.Tensor  # (B,) exit each row stopped at

    @functools.cached_property
    def outputs(self) -> Any:
        """Head output at the exit each row stopped at, rows in input order."""
        return self.select(self.exit_index)

    def select(self, which: torch.Tensor) -> Any:
        """Head output of exit `which[i]` for each row i (an exit the row reached: a recall
        policy's answer), rows in input order; same structure as a head output."""
        n = self.exit_index.shape[0]
        picks = [which.index_select(0, rows) == k for k, rows in enumerate(self.exit_rows)]

        def assemble(part: Callable[[Any], Any]) -> Any:
            parts = [part(o) for o in self.exit_outputs]
            proto = next((t for t in parts if isinstance(t, torch.Tensor)), None)
            if proto is None:
                return parts[0]  # None (or a constant) at every exit
            # an output only some exits have (an auxiliary head): NaN for rows answered by
            # an exit without it
            res = (proto.new_full((n,) + tuple(proto.shape[1:]), torch.nan) if proto.is_floating_point()
                   else proto.new_zeros((n,) + tuple(proto.shape[1:])))
            for t, rows, pick in zip(parts, self.exit_rows, picks):
                if not isinstance(t, torch.Tensor):
                    continue
                p = pick.view((-1,) + (1,) * (t.dim() - 1))
                res.index_copy_(0, rows, torch.where(p, t, res.index_select(0, rows)))
            return res

        return _map_parts(self.exit_outputs[0], assemble)


def _map_parts(first: Any, assemble: Callable[[Callable[[Any], Any]], Any]) -> Any:
    """Rebuild a head output (a tensor, a NamedTuple/tuple or a dict of tensors) part by part."""
    if isinstance(first, torch.Tensor):
        return assemble(lambda o: o)
    def part(i: Any) -> Callable[[Any], Any]:
        return lambda o: o[i]

    if isinstance(first, dict):
        return {key: assemble(part(key)) for key in first}

    parts = [assemble(part(i)) for i in range(len(first))]
    return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)


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
