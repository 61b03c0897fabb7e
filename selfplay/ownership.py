"""How well a network's ownership head knows who ends up owning each point.

    python -m selfplay.ownership accuracy --net runs/go9/best.pt --sgf runs/held_out
    python -m selfplay.ownership plot --net runs/go9/best.pt --sgf runs/held_out/game_0001.sgf \
        --move 30 --out docs/ownership_go9.png

`accuracy` replays every finished game in the SGF files (an arena's output: games the
network never trained on) and, at every position, compares the sign of the predicted
ownership with the final owner under area scoring (`Game.final_ownership`), over the points
someone owns; games that did not end on the board (resignation, forfeit) are skipped and
counted. `plot` draws one position's predicted ownership next to the game's final position.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpv.errors import ConfigError, DPVError, cli_main
from dpv.games.coords import GTP_COLUMNS

BATCH = 256  # positions per forward


@dataclass
class GamePositions:
    """A replayed game: every position before a move (setup passes included) and the end."""

    path: Path
    states: list  # GameState per position, in order
    final: object  # the last state
    owner: np.ndarray  # (H, W) final owner, +1 Black


def load_net(path: str):
    from dpv.checkpoint import load_policy_value
    from dpv.nets import has_aux

    net, game_cfg = load_policy_value(path)
    if not has_aux(net):
        raise ConfigError(f"{path}: the network has no ownership head (net.aux_heads is "
                          f"{net.config.aux_heads!r}); train with --set net.aux_heads=last")
    return net, game_cfg


def sgf_files(where: str) -> list[Path]:
    p = Path(where)
    files = sorted(p.glob("*.sgf")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"no SGF files at {p}")
    return files


def replay_positions(path: Path, game_cfg) -> GamePositions | None:
    """The game's positions, or None when it did not end on the board (no final owner)."""
    from dpv.games import make_game
    from dpv.play.sgf import read_sgf, replay

    sgf = read_sgf(path)
    cfg = dataclasses.replace(game_cfg, komi=sgf.komi,
                              max_game_length=max(4 * sgf.size * sgf.size, len(sgf.moves)))
    final = replay(sgf, cfg)
    if not final.is_terminal():
        return None
    game = make_game(cfg)
    state, states = game.new_state(), []
    for action in final.history():
        states.append(state.clone())
        state.apply(action)
    return GamePositions(path, states, final, game.final_ownership(final))


def predicted_black_ownership(net, states) -> np.ndarray:
    """(N, H, W) ownership from the network, +1 Black."""
    from dpv.nets import predict_aux

    out = []
    for i in range(0, len(states), BATCH):
        out += [p.black_ownership for p in predict_aux(net, states[i:i + BATCH])]
    return np.stack(out)


def accuracy(net, games: list[GamePositions]) -> dict:
    """Share of owned points whose predicted sign is right, overall and per third of a game."""
    right = total = 0
    thirds = np.zeros((3, 2), dtype=np.int64)  # (right, points) per third of the game
    positions = 0
    for g in games:
        pred = np.sign(predicted_black_ownership(net, g.states))
        owned = g.owner != 0
        for t, p in enumerate(pred):
            r, n = int(((p == g.owner) & owned).sum()), int(owned.sum())
            right, total = right + r, total + n
            thirds[min(3 * t // len(pred), 2)] += (r, n)
        positions += len(pred)
    return {"games": len(games), "positions": positions, "points": total,
            "accuracy": right / total if total else None,
            "by_third": [float(r / n) if n else None for r, n in thirds]}


def plot(net, g: GamePositions, move: int, out: Path) -> float:
    """Predicted ownership after `move` moves beside the final position; returns the sign
    accuracy at that position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dpv.checkpoint import atomic_write_bytes

    if not 0 <= move < len(g.states):
        raise ConfigError(f"--move {move}: {g.path.name} has positions 0..{len(g.states) - 1}")
    state = g.states[move]
    pred = predicted_black_ownership(net, [state])[0]
    owned = g.owner != 0
    acc = float(((np.sign(pred) == g.owner) & owned).sum() / max(int(owned.sum()), 1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
    for ax, st, field, title in (
            (axes[0], state, pred, f"predicted ownership after move {move} ({acc:.0%} signs right)"),
            (axes[1], g.final, g.owner.astype(float), f"final position (move {len(g.states)}), area owner")):
        _draw(ax, st, field, title)
    fig.suptitle(f"{g.path.name}: ownership, black = +1 (dark), white = -1 (light), 0 grey")
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return acc


def _draw(ax, state, field: np.ndarray, title: str) -> None:
    n = field.shape[0]
    # a shade per owner: -1 light, 0 mid grey, +1 dark, never as dark as a black stone
    ax.imshow(field, cmap="Greys", vmin=-1.4, vmax=1.4, origin="lower")
    black, white = state.game.stones(state.spiel_state)
    for colour, stones, edge in (("black", black, "black"), ("white", white, "black")):
        rows, cols = np.nonzero(stones)
        ax.scatter(cols, rows, s=420 * 9 / n, c=colour, edgecolors=edge, linewidths=1.2, zorder=3)
    ax.set_xticks(range(n), list(GTP_COLUMNS[:n]))
    ax.set_yticks(range(n), [str(r + 1) for r in range(n)])
    ax.set_title(title, fontsize=9)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m selfplay.ownership", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("accuracy", help="sign accuracy of the ownership head on finished games")
    a.add_argument("--net", required=True, help="a policy-value checkpoint with aux heads")
    a.add_argument("--sgf", required=True, help="an SGF file or a folder of them (held-out games)")
    a.add_argument("--json", help="also write the numbers here")
    p = sub.add_parser("plot", help="one position's predicted ownership beside the final position")
    p.add_argument("--net", required=True)
    p.add_argument("--sgf", required=True, help="one SGF file of a game played to its end")
    p.add_argument("--move", type=int, default=None, help="position to show (default: mid-game)")
    p.add_argument("--out", required=True, help="PNG to write")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    net, game_cfg = load_net(args.net)
    if args.command == "plot":
        g = replay_positions(sgf_files(args.sgf)[0], game_cfg)
        if g is None:
            raise DPVError(f"{args.sgf}: the game did not end on the board (resigned or forfeit)")
        move = len(g.states) // 2 if args.move is None else args.move
        acc = plot(net, g, move, Path(args.out))
        print(f"wrote {args.out}: move {move} of {len(g.states)}, {acc:.1%} of owned points' signs right")
        return 0
    games, skipped = [], 0
    for f in sgf_files(args.sgf):
        g = replay_positions(f, game_cfg)
        if g is None:
            skipped += 1
        else:
            games.append(g)
    if not games:
        raise DPVError(f"{args.sgf}: no game there ended on the board ({skipped} skipped)")
    res = {**accuracy(net, games), "skipped_unfinished": skipped}
    thirds = " / ".join("-" if x is None else f"{x:.3f}" for x in res["by_third"])
    print(f"ownership sign accuracy {res['accuracy']:.3f} over {res['points']} owned points in "
          f"{res['positions']} positions of {res['games']} finished games (by thirds of the game: "
          f"{thirds}); {skipped} games not played to the end skipped")
    if args.json:
        from dpv.checkpoint import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(res, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
