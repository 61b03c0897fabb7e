"""What an arena match is to play: two player specs, the game, the games and their openings;
and the players a plan names, built the same way in the parent and in every worker."""
from __future__ import annotations

from dataclasses import dataclass

from dpv.config import GameConfig
from dpv.games import make_game
from dpv.play.match import GameTask, match_tasks
from dpv.players.base import Player

DEFAULT_OPENING_MOVES = 4


@dataclass(frozen=True)
class MatchPlan:
    spec_a: str
    spec_b: str
    game_cfg: GameConfig
    games: int
    alternate: bool = True
    opening_moves: int = DEFAULT_OPENING_MOVES
    seed: int = 0
    device: str = "cpu"

    def tasks(self) -> list[GameTask]:
        """Every game of the match (the match engine's one opening rule)."""
        return match_tasks(make_game(self.game_cfg), self.games, self.opening_moves, self.seed,
                           self.alternate)


def build_players(plan: MatchPlan, worker: int = 0) -> tuple[Player, Player]:
    """Both players of the plan; distinct names so the report can tell them apart."""
    from dpv.players.spec import make_player

    a = make_player(plan.spec_a, plan.game_cfg, seed=plan.seed * 1000 + 2 * worker, device=plan.device)
    try:
        b = make_player(plan.spec_b, plan.game_cfg, seed=plan.seed * 1000 + 2 * worker + 1,
                        device=plan.device)
    except BaseException:
        a.close()
        raise
    if a.name == b.name:
        a.name, b.name = f"{a.name} (a)", f"{b.name} (b)"
    return a, b
