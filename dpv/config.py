"""Typed configs loaded from YAML: frozen dataclasses validated with the field named in errors.

Each package owns its sections: dpv defines the game, network and search sections; selfplay
and eexit_vision compose them into their own run configs. `load_sections` validates the
sections a caller knows and (optionally) leaves the others to their owners.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import yaml

from dpv.errors import ConfigError
from dpv.games import registry


@runtime_checkable
class Validated(Protocol):
    """A config section that checks itself after loading; `where` names it in errors."""

    def validate(self, where: str) -> None: ...


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one YAML value to the annotated type, or raise ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types name the field."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name in data:
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(data[name], hints[name], key)
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # missing required field
        raise ConfigError(f"{where or cls.__name__}: {e}") from None
    if isinstance(obj, Validated):
        obj.validate(where or cls.__name__)
    return obj


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: top level must be a mapping")
    return data


def set_dotted(data: dict, assignment: str) -> None:
    """Apply one `section.key=value` override (value parsed as YAML) to a raw config dict."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like section.key=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{key}': '{p}' is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


# ---------------------------------------------------------------- sections owned by dpv

GAMES = tuple(registry.GAMES)
GO_SIZES = registry.GO_SIZES  # kept for callers that name Go's sizes


@dataclass(frozen=True)
class GameConfig:
    name: str = "go"
    board_size: int = 9
    komi: float = 7.5
    # pyspiel's default (2 * 81) is short for 9x9 play; None -> 4 * board points.
    max_game_length: int | None = None
    history: int = 8  # past positions in the Go observation (AlphaGo Zero: 8 -> 17 planes)
    handicap: int = 0  # Go: OpenSpiel's handicap stones, White moves first (19x19 only)

    def validate(self, where: str) -> None:
        info = registry.game_info(self.name)
        if info is None:
            raise ConfigError(f"{where}.name: unknown game {self.name!r} (known: {', '.join(GAMES)})")
        if info.board_sizes is not None:
            check(self.board_size in info.board_sizes, f"{where}.board_size",
                  f"{self.board_size} is not a supported {info.title} board size {info.board_sizes}")
        if info.uses_history:
            check(self.history >= 1, f"{where}.history", "must be >= 1")
        check(self.max_game_length is None or self.max_game_length > 0,
              f"{where}.max_game_length", "must be > 0")
        check(self.handicap == 0 or (self.board_size in info.handicap_sizes
                                     and 2 <= self.handicap <= 9), f"{where}.handicap",
              f"{self.handicap}: OpenSpiel places 2 to 9 handicap stones on 19x19 Go only")


AUX_HEADS = ("none", "last", "all")


@dataclass(frozen=True)
class NetConfig:
    blocks: int = 6
    channels: int = 64
    exits: tuple[int, ...] = (2, 4, 6)  # 1-based block after which each exit sits
    value_hidden: int = 256
    policy_channels: int = 2
    # auxiliary heads (KataGo): final ownership of each point and score margin, both from
    # the mover's view; on the deepest exit ("last"), on every exit ("all"), or none.
    # Loss weights as KataGo's: ownership 1.5 x the mean over points (KataGo: 1.5 / b^2
    # summed over the b^2 points), score small beside the value (selfplay.losses)
    aux_heads: str = "none"
    ownership_weight: float = 1.5
    score_weight: float = 0.05

    def has_aux(self, k: int) -> bool:
        """Whether exit k carries the ownership and score heads."""
        return self.aux_heads == "all" or (self.aux_heads == "last" and k == len(self.exits) - 1)

    def validate(self, where: str) -> None:
        check(self.aux_heads in AUX_HEADS, f"{where}.aux_heads",
              f"unknown placement {self.aux_heads!r} (known: {', '.join(AUX_HEADS)})")
        check(self.ownership_weight >= 0, f"{where}.ownership_weight", "must be >= 0")
        check(self.score_weight >= 0, f"{where}.score_weight", "must be >= 0")
        check(self.blocks >= 1, f"{where}.blocks", "must be >= 1")
        check(self.channels >= 1, f"{where}.channels", "must be >= 1")
        check(len(self.exits) >= 1, f"{where}.exits", "needs at least one exit")
        for e in self.exits:
            check(1 <= e <= self.blocks, f"{where}.exits",
                  f"exit position {e} is beyond the {self.blocks} blocks of the network")
        check(list(self.exits) == sorted(set(self.exits)), f"{where}.exits",
              "positions must be strictly increasing")
        check(self.exits[-1] == self.blocks, f"{where}.exits",
              f"the last exit must sit after the last block ({self.blocks})")


EXIT_MODES = ("fixed", "fixed_budget", "dynamic", "dynamic_static")
BUDGET_ENDS = ("cap", "reserve")
ROOT_RULES = ("puct", "gumbel")


@dataclass(frozen=True)
class MCTSConfig:
    simulations: int = 100
    c_puct: float = 1.5
    fpu: float = 0.0  # value of unvisited children, from the parent's player view
    dirichlet_alpha: float = 0.3
    dirichlet_fraction: float = 0.25
    virtual_loss: float = 1.0
    leaves_per_call: int = 8  # leaves gathered per tree per network call
    temperature: float = 1.0
    temperature_moves: int = 10  # moves played with temperature, then greedy
    reuse_tree: bool = True
    # exit selection (thesis Tables 6.2/6.3)
    exit_mode: str = "fixed"
    exit: int = -1  # fixed exit index (-1 = deepest)
    n_ref: int = 0  # budget = n_ref * FLOPs(deepest exit); 0 = no FLOPs budget
    tau0: float = 0.6
    alpha: float = 0.3
    # end of a dynamic search's budget (dpv.mcts.search): cap leaves to the deepest exit
    # still affordable, or reserve the deepest exit's cost for every leaf
    budget_end: str = "cap"
    # root rule: PUCT with Dirichlet noise (AlphaZero), or Gumbel-top-k sampling of gumbel_m
    # actions and sequential halving (Gumbel AlphaZero; dpv.mcts.gumbel), no Dirichlet noise;
    # a Gumbel search plays its survivor, so temperature does not apply to it
    root: str = "puct"
    gumbel_m: int = 16
    gumbel_scale: float = 1.0  # scale of the Gumbel noise (0: deterministic, for evaluation)
    gumbel_c_visit: float = 50.0  # sigma(q) = (c_visit + max N) * c_scale * q (the paper's)
    gumbel_c_scale: float = 1.0

    def validate(self, where: str) -> None:
        check(self.simulations >= 1, f"{where}.simulations", "must be >= 1")
        check(self.root in ROOT_RULES, f"{where}.root",
              f"unknown root rule {self.root!r} (known: {', '.join(ROOT_RULES)})")
        check(self.gumbel_m >= 1, f"{where}.gumbel_m", "must be >= 1")
        check(self.gumbel_scale >= 0, f"{where}.gumbel_scale", "must be >= 0")
        check(self.gumbel_c_visit >= 0, f"{where}.gumbel_c_visit", "must be >= 0")
        check(self.gumbel_c_scale > 0, f"{where}.gumbel_c_scale", "must be > 0")
        check(self.c_puct > 0, f"{where}.c_puct", "must be > 0")
        check(self.leaves_per_call >= 1, f"{where}.leaves_per_call", "must be >= 1")
        check(0 <= self.dirichlet_fraction <= 1, f"{where}.dirichlet_fraction", "must be in [0, 1]")
        check(self.dirichlet_alpha > 0, f"{where}.dirichlet_alpha", "must be > 0")
        check(self.exit_mode in EXIT_MODES, f"{where}.exit_mode",
              f"unknown mode {self.exit_mode!r} (known: {', '.join(EXIT_MODES)})")
        check(self.n_ref >= 0, f"{where}.n_ref", "must be >= 0")
        check(0.0 <= self.tau0 <= 1.0, f"{where}.tau0", f"{self.tau0} is outside [0, 1]")
        check(self.budget_end in BUDGET_ENDS, f"{where}.budget_end",
              f"unknown rule {self.budget_end!r} (known: {', '.join(BUDGET_ENDS)})")
        check(self.temperature >= 0, f"{where}.temperature", "must be >= 0")


# Every section a config of this project may hold: dpv's own and those that selfplay and
# eexit_vision compose (named here, not imported: dpv imports neither). A tool that reads a
# few sections of a larger config refuses any other name, so a misspelt section ('nett:')
# is an error in every command, as in selfplay.run. tests/test_config_sections.py keeps
# this in step with the packages' SECTIONS.
PROJECT_SECTIONS = frozenset({
    "game", "net", "mcts",  # dpv
    "selfplay", "replay", "train", "gating", "anchors", "ray",  # selfplay
    "data", "model", "loss",  # eexit_vision (its "train" is named above)
})


def load_sections(
    path_or_data: str | Path | dict,
    sections: Mapping[str, type],
    strict: bool = True,
) -> dict[str, Any]:
    """Validate the named sections of a config. With strict, any other section is an error;
    without, other sections of the project's configs are left to their owners, and a name
    that no config of the project has is still an error."""
    data = path_or_data if isinstance(path_or_data, dict) else read_yaml(path_or_data)
    known = set(sections) if strict else set(sections) | PROJECT_SECTIONS
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config section '{unknown[0]}' (known: {', '.join(sorted(known))})"
        )
    return {name: from_dict(cls, data.get(name), name) for name, cls in sections.items()}
