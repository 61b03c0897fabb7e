"""The self-play run config: dpv's game/net/mcts sections plus the sections training owns.

One YAML file holds all of it; `load_run_config` validates every section with the field
named in errors. Run limits (--max-games/--max-steps/--hours) are not part of the config,
so extending a run is not "a different config".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpv.config import (GameConfig, MCTSConfig, NetConfig, check, from_dict, load_sections,
                        read_yaml, set_dotted, to_dict)
from dpv.errors import ConfigError
from dpv.games.registry import board_sizes
from selfplay.resign import ResignConfig

LOSS_VARIANTS = ("weighted", "no_weight", "multi_step", "single_exit")
SYMMETRY_MODES = ("sample", "write", "none")
GATE_OPPONENTS = ("best", "previous")


@dataclass(frozen=True)
class SelfPlaySection:
    actors: int = 2  # self-play actors; on 2 cores two 1-thread actors beat one 2-thread one
    threads_per_actor: int = 1  # torch intra-op threads inside each actor
    concurrent_games: int = 16  # games each actor steps at once (one batched network call)
    moves_per_call: int = 16  # moves each actor plays per Ray call before reporting back
    exit: int = -1  # self-play exit (-1 = deepest); multi_step overrides it over the run
    max_pending_calls: int = 2  # bound on calls queued to one actor
    device: str = "cpu"  # actors' network device: cpu, or auto = a share of a GPU when the cluster has one
    pass_after: int = 0  # games with a pass: none in self-play before this move (0 = always allowed)
    # playout-cap randomisation (KataGo): this share of moves gets the full search
    # (mcts.simulations, root noise) and is a policy target; the others a fast search of
    # fast_simulations without noise, value target only. 1.0 = every move full (off).
    full_search_share: float = 1.0
    fast_simulations: int = 0
    # resignation with its false-positive check (selfplay.resign; off by default)
    resign: ResignConfig = field(default_factory=ResignConfig)
    # local: every actor runs its own network; server: one inference server per node owns
    # it (on the GPU with device auto) and batches every actor's rows (selfplay/inference.py)
    inference: str = "local"
    server_max_batch: int = 0  # rows per server batch (0 = one step of all its actors' games)
    server_max_wait_ms: float = 2.0  # longest a batch waits for more rows after its first
    # torch threads of a server (0 = actors x threads_per_actor); 1 by default: on a CPU the
    # actors' tree work shares the cores, and a team of threads stalls whenever one of its
    # threads is preempted (benchmarks/selfplay_speed.py --inference both)
    server_threads: int = 1
    server_precision: str = "fp32"  # fp32, or bf16 / fp16 under torch.autocast

    def validate(self, where: str) -> None:
        check(self.actors >= 1, f"{where}.actors", "must be >= 1")
        check(self.threads_per_actor >= 1, f"{where}.threads_per_actor", "must be >= 1")
        check(self.concurrent_games >= 1, f"{where}.concurrent_games", "must be >= 1")
        check(self.moves_per_call >= 1, f"{where}.moves_per_call", "must be >= 1")
        check(self.max_pending_calls >= 1, f"{where}.max_pending_calls", "must be >= 1")
        check(self.device in ("cpu", "auto"), f"{where}.device", f"{self.device!r} is not cpu or auto")
        check(self.pass_after >= 0, f"{where}.pass_after", "must be >= 0")
        check(0.0 < self.full_search_share <= 1.0, f"{where}.full_search_share", "must be in (0, 1]")
        check(self.fast_simulations >= 0, f"{where}.fast_simulations", "must be >= 0")
        check(self.full_search_share == 1.0 or self.fast_simulations >= 1, f"{where}.fast_simulations",
              f"must be >= 1 when full_search_share is {self.full_search_share} (< 1)")
        check(self.inference in ("local", "server"), f"{where}.inference",
              f"{self.inference!r} is not local or server")
        check(self.server_max_batch >= 0, f"{where}.server_max_batch", "must be >= 0")
        check(self.server_max_wait_ms >= 0, f"{where}.server_max_wait_ms", "must be >= 0")
        check(self.server_threads >= 0, f"{where}.server_threads", "must be >= 0")
        check(self.server_precision in ("fp32", "bf16", "fp16"), f"{where}.server_precision",
              f"{self.server_precision!r} is not fp32, bf16 or fp16")


@dataclass(frozen=True)
class ReplaySection:
    capacity: int = 50_000  # positions kept (a ring: the oldest leave first)
    symmetries: str = "sample"  # apply a random symmetry at sampling, all of them at write, or none

    def validate(self, where: str) -> None:
        check(self.capacity >= 1, f"{where}.capacity", "must be >= 1")
        check(self.symmetries in SYMMETRY_MODES, f"{where}.symmetries",
              f"unknown mode {self.symmetries!r} (known: {', '.join(SYMMETRY_MODES)})")


@dataclass(frozen=True)
class TrainSection:
    variant: str = "weighted"  # deep-supervision variant (thesis Fig. 6.6/6.7)
    deep_weight: float = 2.0  # w of the deepest exit under "weighted" (the others get 1)
    batch_size: int = 256
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    start_games: int = 3000  # self-play games before the first training step
    steps_per_block: int = 1000  # training steps allowed ...
    games_per_block: int = 500  # ... per this many new games
    checkpoint_seconds: float = 300.0  # a SIGKILL loses at most about this much work
    log_every_steps: int = 20
    device: str = "auto"  # auto = cuda when present, else cpu
    threads: int = 0  # torch threads of the learner on CPU (0 = torch's default)
    seed: int = 0

    def validate(self, where: str) -> None:
        check(self.variant in LOSS_VARIANTS, f"{where}.variant",
              f"unknown variant {self.variant!r} (known: {', '.join(LOSS_VARIANTS)})")
        check(self.deep_weight > 0, f"{where}.deep_weight", "must be > 0")
        check(self.batch_size >= 1, f"{where}.batch_size", "must be >= 1")
        check(self.lr > 0, f"{where}.lr", "must be > 0")
        check(self.weight_decay >= 0, f"{where}.weight_decay", "must be >= 0")
        check(self.start_games >= 0, f"{where}.start_games", "must be >= 0")
        check(self.steps_per_block >= 1, f"{where}.steps_per_block", "must be >= 1")
        check(self.games_per_block >= 1, f"{where}.games_per_block", "must be >= 1")
        check(self.checkpoint_seconds > 0, f"{where}.checkpoint_seconds", "must be > 0")
        check(self.log_every_steps >= 1, f"{where}.log_every_steps", "must be >= 1")
        check(self.threads >= 0, f"{where}.threads", "must be >= 0")
        check(self.device in ("auto", "cpu") or self.device.startswith("cuda"), f"{where}.device",
              f"{self.device!r} is not auto, cpu or cuda[:N]")


@dataclass(frozen=True)
class GatingSection:
    enabled: bool = True
    every_steps: int = 1000  # training steps between evaluation matches
    games: int = 40  # colours alternated
    threshold: float = 0.55  # the candidate must win MORE than this share to become best
    simulations: int = 0  # 0 = mcts.simulations (the self-play search)
    concurrent_games: int = 8
    # the candidate plays the best network, or the previous candidate (promoted or not), so a
    # best that no candidate beats cannot hold the learner back for long
    opponent: str = "best"

    def validate(self, where: str) -> None:
        check(self.every_steps >= 1, f"{where}.every_steps", "must be >= 1")
        check(self.opponent in GATE_OPPONENTS, f"{where}.opponent",
              f"unknown opponent {self.opponent!r} (known: {', '.join(GATE_OPPONENTS)})")
        check(self.games >= 2, f"{where}.games", "must be >= 2 (colours alternate)")
        check(0.0 <= self.threshold < 1.0, f"{where}.threshold", "must be in [0, 1)")
        check(self.simulations >= 0, f"{where}.simulations", "must be >= 0")
        check(self.concurrent_games >= 1, f"{where}.concurrent_games", "must be >= 1")


@dataclass(frozen=True)
class AnchorsSection:
    every_steps: int = 2000  # training steps between anchor matches (0 = never)
    games: int = 20
    # dpv player specs; gtp:... anchors are skipped (with a log line) when the binary is missing
    players: tuple[str, ...] = ("random", "mcts:sims=1000",
                                'gtp:"/usr/games/gnugo --mode gtp --level 1 --chinese-rules --capture-all-dead"')
    simulations: int = 0  # our network's simulations per move (0 = mcts.simulations)

    def validate(self, where: str) -> None:
        check(self.every_steps >= 0, f"{where}.every_steps", "must be >= 0")
        check(self.games >= 1, f"{where}.games", "must be >= 1")
        check(self.simulations >= 0, f"{where}.simulations", "must be >= 0")
        from dpv.errors import DPVError
        from dpv.players.spec import parse_spec

        for i, spec in enumerate(self.players):  # a bad spec fails now, not an hour into the run
            try:
                parse_spec(spec)
            except DPVError as e:
                raise ConfigError(f"{where}.players[{i}]: {e}") from None


@dataclass(frozen=True)
class RaySection:
    num_cpus: int = 0  # 0 = let Ray count them (embedded ray.init only)
    object_store_memory: int = 0  # bytes; 0 = Ray's default (a large share of /dev/shm)
    eval_actors: int = 1  # actors playing gating and anchor matches

    def validate(self, where: str) -> None:
        check(self.num_cpus >= 0, f"{where}.num_cpus", "must be >= 0")
        check(self.object_store_memory == 0 or self.object_store_memory >= 78_643_200,
              f"{where}.object_store_memory", "must be 0 (default) or >= 75 MiB (Ray's minimum)")
        check(self.eval_actors >= 1, f"{where}.eval_actors", "must be >= 1")


@dataclass(frozen=True)
class RunConfig:
    game: GameConfig = field(default_factory=GameConfig)
    net: NetConfig = field(default_factory=NetConfig)
    mcts: MCTSConfig = field(default_factory=MCTSConfig)
    selfplay: SelfPlaySection = field(default_factory=SelfPlaySection)
    replay: ReplaySection = field(default_factory=ReplaySection)
    train: TrainSection = field(default_factory=TrainSection)
    gating: GatingSection = field(default_factory=GatingSection)
    anchors: AnchorsSection = field(default_factory=AnchorsSection)
    ray: RaySection = field(default_factory=RaySection)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


SECTIONS = {"game": GameConfig, "net": NetConfig, "mcts": MCTSConfig, "selfplay": SelfPlaySection,
            "replay": ReplaySection, "train": TrainSection, "gating": GatingSection,
            "anchors": AnchorsSection, "ray": RaySection}

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# `--board N` starts from the CPU default with game.board_size = N.
DEFAULT_CONFIG = CONFIG_DIR / "go9.yaml"


def build_run_config(data: dict) -> RunConfig:
    return RunConfig(**load_sections(data, SECTIONS, strict=True))


def pass_free_moves(game_cfg: GameConfig) -> int:
    """Self-play's pass-free opening for a board other than the config file's: half the
    board's points (40 on 9x9, as go9.yaml), none for a game without a pass."""
    from dpv.games import make_game

    game = make_game(game_cfg)
    _, h, w = game.observation_shape
    return (h * w) // 2 if game.pass_action is not None else 0


def _set_board(raw: dict, board: int) -> None:
    """`--board N`: the board size, and the file's board-dependent values (max game length,
    pass-free opening) replaced by what the game gives for N when N is not the file's size."""
    game = raw.setdefault("game", {})
    if not isinstance(game, dict):
        raise ConfigError("game: expected a mapping")
    name = game.get("name", GameConfig.name)
    if board_sizes(name) is None:
        raise ConfigError(f"--board {board}: the config's game is {name!r}, which has no board size")
    file_board = game.get("board_size", GameConfig.board_size)
    game["board_size"] = board
    if board == file_board:
        return
    game.pop("max_game_length", None)  # None: the game's own limit (4 x the board's points for Go)
    selfplay = raw.get("selfplay")
    if isinstance(selfplay, dict) and selfplay.get("pass_after"):
        try:
            selfplay["pass_after"] = pass_free_moves(from_dict(GameConfig, game, "game"))
        except ConfigError:
            pass  # an unsupported size: validation below names it


def load_run_config(path: str | Path | None = None, overrides: list[str] = (),
                    board: int | None = None, data: dict | None = None) -> RunConfig:
    """Read a YAML config (or a dict), apply --board and --set overrides, validate it all."""
    raw = dict(data) if data is not None else read_yaml(path or DEFAULT_CONFIG)
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    if board is not None:
        _set_board(raw, board)
    for assignment in overrides:
        set_dotted(raw, assignment)
    return build_run_config(raw)
