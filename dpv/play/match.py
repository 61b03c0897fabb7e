"""The match engine: one game (`play_game`), a colour-alternating match of `Player`s played
one game after another (`play_match`), and the same match between two `BatchPlayer`s with
many games at once (`play_batched_match`: one network call serves the searches of every game
where that side is to move; what self-play gating plays). Used by the arena, the experiments
and self-play's gating and anchors.

One opening rule (`match_tasks`): game i of a match has A black when i is even, and games 2k
and 2k+1 share the random opening of pair k, so neither side gains from the openings and
deterministic players still play different games.

A game ends as the game adapter says (`game.result`: two passes or the length limit, area
scored with komi for Go), by resignation (`Resign` from `select_move`), or by forfeit: a
player that returns an illegal move or fails (`PlayerFailure`, e.g. a GTP engine that died)
loses, the reason is recorded, and the match goes on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from dpv.config import GameConfig
from dpv.errors import DPVError
from dpv.games import make_game
from dpv.games.base import Game, GameState
from dpv.games.scoring import format_result, parse_result
from dpv.play.records import BLACK, GameRecord, MatchResult
from dpv.players.base import BatchPlayer, Player, PlayerFailure, Resign

OnGame = Callable[[GameRecord], None]


# ---------------------------------------------------------------------- openings
def random_opening(game: Game, n: int, rng: np.random.Generator) -> list[int]:
    """`n` random legal moves (never a pass) from the initial position, so deterministic
    players do not replay one game; fewer if the game ends first."""
    state = game.new_state()
    moves: list[int] = []
    for _ in range(n):
        if state.is_terminal():
            break
        legal = [a for a in state.legal_actions() if a != game.pass_action]
        if not legal:
            break
        a = int(legal[rng.integers(len(legal))])
        moves.append(a)
        state.apply(a)
    return moves


def pair_opening(game: Game, opening_moves: int, seed: int, pair: int) -> list[int]:
    """The opening shared by games 2*pair and 2*pair+1 (same opening, colours swapped)."""
    return random_opening(game, opening_moves, np.random.default_rng([seed, pair]))


@dataclass(frozen=True)
class GameTask:
    """One game of a match: its number, A's colour and the opening it starts from."""

    index: int
    a_colour: int
    opening: tuple[int, ...]


def match_tasks(game: Game, games: int, opening_moves: int = 0, seed: int = 0,
                alternate: bool = True, first_game: int = 0) -> list[GameTask]:
    """Games first_game .. first_game+games-1 of a match. With `alternate`, A has black in
    even games and each pair of games shares one opening; else A is always black and every
    game has its own opening. A match split over processes gives each part its own
    `first_game` (even, so pairs stay whole) and plays exactly the games of the whole."""
    tasks = []
    for index in range(first_game, first_game + games):
        a_colour = index % 2 if alternate else BLACK
        pair = index // 2 if alternate else index
        tasks.append(GameTask(index, a_colour, tuple(pair_opening(game, opening_moves, seed, pair))))
    return tasks


# ---------------------------------------------------------------------- one game, by parts
def new_record(black: str, white: str, game_cfg: GameConfig, game: Game) -> GameRecord:
    return GameRecord(black=black, white=white, game=game_cfg.name,
                      board_size=game.observation_shape[1], komi=float(game_cfg.komi))


def _forfeit(rec: GameRecord, loser: int, why: str) -> GameRecord:
    rec.winner, rec.reason, rec.detail = loser ^ 1, "forfeit", why
    rec.result = format_result(rec.winner, reason="forfeit")
    return rec


def _resigned(rec: GameRecord, loser: int) -> GameRecord:
    rec.winner, rec.reason = loser ^ 1, "resign"
    rec.result = format_result(rec.winner, reason="resign")
    return rec


def _scored(rec: GameRecord, state: GameState, game: Game) -> GameRecord:
    """The result of a finished game, as the game adapter rules it."""
    outcome = game.result(state)
    rec.winner, rec.score, rec.reason, rec.result = (outcome.winner, outcome.margin,
                                                     outcome.reason, outcome.text)
    return rec


def _move_text(game: Game, action: int) -> str:
    try:
        return game.action_to_string(action)
    except Exception:  # an action far outside the game has no name
        return str(action)


def _illegal(game: Game, name: str, action: int) -> str:
    return f"{name} played an illegal move ({_move_text(game, action)})"


def _check_engine_scores(rec: GameRecord, players: Sequence[Player]) -> None:
    """Players that score the game themselves (GTP engines) are asked and compared."""
    if rec.reason == "superko":
        return  # our rules' draw; engines score the board and would always "disagree"
    for p in players:
        if p.name in rec.engine_scores:
            continue
        try:
            answer = p.final_score()
        except PlayerFailure as e:
            rec.engine_scores[p.name] = f"error: {e}"
            continue
        if answer is None:
            continue
        rec.engine_scores[p.name] = answer
        try:
            their_winner, _ = parse_result(answer)
        except ValueError:
            rec.score_disagreements += 1
            continue
        if their_winner != rec.winner:
            rec.score_disagreements += 1


def _notify_all(players: Sequence[Player], state: GameState, action: int) -> tuple[int, str] | None:
    """Tell both players about a move; returns (colour, why) for a player that failed."""
    for colour, p in enumerate(players):
        try:
            p.notify_move(state, action)
        except PlayerFailure as e:
            return colour, f"{p.name}: {e}"
    return None


def _start(game: Game, opening: Sequence[int]) -> GameState:
    """The position after the opening; an opening that is not legal is the caller's error."""
    state = game.new_state()
    for a in opening:
        if not state.is_legal(a):
            raise DPVError(f"opening move {_move_text(game, a)} is illegal")
        state.apply(a)
    return state


# ---------------------------------------------------------------------- sequential
def play_game(black: Player, white: Player, game_cfg: GameConfig,
              opening_moves: int | Sequence[int] = 0, rng: np.random.Generator | None = None,
              game: Game | None = None) -> GameRecord:
    """Play one game; `opening_moves` is a count of random opening moves (drawn from `rng`)
    or the opening's actions themselves. Both players are reset first."""
    game = game if game is not None else make_game(game_cfg)
    players = (black, white)
    rec = new_record(black.name, white.name, game_cfg, game)
    if isinstance(opening_moves, int):
        opening = random_opening(game, opening_moves, rng if rng is not None else np.random.default_rng(0))
    else:
        opening = [int(a) for a in opening_moves]
    _start(game, opening)  # refuse a bad opening before any player is told of it

    for colour, p in enumerate(players):
        try:
            p.reset()
        except PlayerFailure as e:
            return _forfeit(rec, colour, f"{p.name}: {e}")

    state = game.new_state()
    for a in opening:
        failed = _notify_all(players, state, a)
        if failed is not None:
            return _forfeit(rec, *failed)
        state.apply(a)
        rec.moves.append(a)
    rec.opening_moves = len(rec.moves)

    while not state.is_terminal():
        colour = state.current_player()
        p = players[colour]
        t0 = time.perf_counter()
        try:
            action = int(p.select_move(state))
        except Resign:
            return _resigned(rec, colour)
        except PlayerFailure as e:
            return _forfeit(rec, colour, f"{p.name}: {e}")
        seconds = time.perf_counter() - t0
        info = p.last_move
        rec.totals[colour].add(info, info.seconds if info.seconds > 0 else seconds)
        if not state.is_legal(action):
            return _forfeit(rec, colour, _illegal(game, p.name, action))
        failed = _notify_all(players, state, action)
        if failed is not None:
            return _forfeit(rec, *failed)
        state.apply(action)
        rec.moves.append(action)

    _scored(rec, state, game)
    _check_engine_scores(rec, players)
    return rec


def play_task(a: Player, b: Player, game_cfg: GameConfig, task: GameTask,
              game: Game | None = None) -> GameRecord:
    """Play one game of a match, A and B in the colours the task gives."""
    black, white = (a, b) if task.a_colour == BLACK else (b, a)
    rec = play_game(black, white, game_cfg, task.opening, game=game)
    rec.index, rec.a_colour = task.index, task.a_colour
    return rec


def play_match(a: Player, b: Player, game_cfg: GameConfig, games: int, *,
               opening_moves: int = 0, seed: int = 0, alternate: bool = True,
               first_game: int = 0, on_game: OnGame | None = None) -> MatchResult:
    """Play `games` games in this process, one after another (see `match_tasks`)."""
    game = make_game(game_cfg)
    result = MatchResult(a.name, b.name)
    for task in match_tasks(game, games, opening_moves, seed, alternate, first_game):
        rec = play_task(a, b, game_cfg, task, game)
        result.records.append(rec)
        if on_game is not None:
            on_game(rec)
    return result


# ---------------------------------------------------------------------- batched
def play_batched_match(a: BatchPlayer, b: BatchPlayer, game_cfg: GameConfig, games: int, *,
                       concurrent: int, opening_moves: int = 0, seed: int = 0,
                       alternate: bool = True, first_game: int = 0,
                       on_game: OnGame | None = None) -> MatchResult:
    """The games of `play_match`, `concurrent` at a time: at each step every game where A
    is to move goes through one `a.select_moves` call, then those where B is. Deterministic
    players play exactly the games `play_match` plays."""
    if a is b:
        raise ValueError("a batched match needs two player objects (each keeps its own trees)")
    if concurrent < 1:
        raise ValueError(f"concurrent must be >= 1, got {concurrent}")
    game = make_game(game_cfg)
    tasks = match_tasks(game, games, opening_moves, seed, alternate, first_game)
    result = MatchResult(a.name, b.name)
    for lo in range(0, len(tasks), concurrent):
        for rec in _play_batch(a, b, game_cfg, game, tasks[lo:lo + concurrent]):
            result.records.append(rec)
            if on_game is not None:
                on_game(rec)
    return result


def _play_batch(a: BatchPlayer, b: BatchPlayer, game_cfg: GameConfig, game: Game,
                tasks: Sequence[GameTask]) -> list[GameRecord]:
    sides = (a, b)
    recs, states = [], []
    for t in tasks:
        black, white = (a, b) if t.a_colour == BLACK else (b, a)
        rec = new_record(black.name, white.name, game_cfg, game)
        rec.index, rec.a_colour = t.index, t.a_colour
        recs.append(rec)
        states.append(_start(game, t.opening))
    for p in sides:
        p.new_games(len(tasks))
    for j, t in enumerate(tasks):
        state = game.new_state()
        for action in t.opening:
            for p in sides:
                p.notify_game_move(j, state, action)
            state.apply(action)
        recs[j].moves = list(t.opening)
        recs[j].opening_moves = len(t.opening)

    live = [j for j, st in enumerate(states) if not st.is_terminal()]
    while live:
        for side, player in enumerate(sides):  # 0 = A, 1 = B
            turn = [j for j in live if not states[j].is_terminal()
                    and (states[j].current_player() == tasks[j].a_colour) == (side == 0)]
            if not turn:
                continue
            t0 = time.perf_counter()
            moves = player.select_moves(turn, [states[j] for j in turn])
            share = (time.perf_counter() - t0) / len(turn)  # the call's time, split evenly
            for j, (action, info) in zip(turn, moves):
                state, rec = states[j], recs[j]
                colour = state.current_player()
                rec.totals[colour].add(info, info.seconds if info.seconds > 0 else share)
                if not state.is_legal(action):
                    _forfeit(rec, colour, _illegal(game, player.name, action))
                    live.remove(j)
                    continue
                for p in sides:
                    p.notify_game_move(j, state, action)
                state.apply(action)
                rec.moves.append(int(action))
        live = [j for j in live if not states[j].is_terminal()]
    for state, rec in zip(states, recs):
        if rec.reason != "forfeit":
            _scored(rec, state, game)
    return recs

