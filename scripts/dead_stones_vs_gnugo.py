"""Dead stones: our engine's judgement beside GNU Go's, on positions where GNU Go's self-play
games ended in two passes with dead stones left on the board (no --capture-all-dead).

    python scripts/dead_stones_vs_gnugo.py --games 20 --out docs/dead_stones_vs_gnugo.md \
        --save-positions docs/dead_stones_positions.json
    python scripts/dead_stones_vs_gnugo.py --positions docs/dead_stones_positions.json   # re-judge

Each game: one GNU Go plays both colours (`genmove b` / `genmove w`, seed = game number)
until two passes; GNU Go answers `final_status_list dead` and `final_score`; the same moves
are played into `python -m dpv.gtp` (over GTP, as a GUI would), which answers the same two
commands. A position agrees when both name the same dead stones. GNU Go's judgement is a
reference, not a referee: the disagreements are listed so a reader can look at them.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpv.checkpoint import atomic_write_bytes  # noqa: E402
from dpv.play.gtp_protocol import read_reply  # noqa: E402
from dpv.play.sgf import write_sgf  # noqa: E402
from dpv.games.coords import vertex_to_action  # noqa: E402

GNUGO = "/usr/games/gnugo"


class Engine:
    """A GTP engine subprocess, read strictly (a reply ends at the first empty line)."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def send(self, command: str, strip: bool = True) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = read_reply(self.proc.stdout)
        if reply is None:
            raise RuntimeError(f"{self.argv[0]} exited during {command!r}")
        if not reply.ok:
            raise RuntimeError(f"{self.argv[0]} refused {command!r}: {reply.text}")
        return reply.text.strip() if strip else reply.text

    def close(self) -> None:
        try:
            self.send("quit")
        except (RuntimeError, OSError, BrokenPipeError):
            pass
        self.proc.wait(timeout=30)


def selfplay(seed: int, size: int, komi: float, level: int, max_moves: int) -> list[str]:
    """Moves (GTP vertices) of one GNU Go self-play game that ends in two passes."""
    gg = Engine([GNUGO, "--mode", "gtp", "--chinese-rules", "--level", str(level),
                 "--seed", str(seed)])
    try:
        gg.send(f"boardsize {size}")
        gg.send(f"komi {komi:g}")
        gg.send("clear_board")
        moves: list[str] = []
        while len(moves) < max_moves:
            moves.append(gg.send(f"genmove {'bw'[len(moves) % 2]}").upper())
            if moves[-2:] == ["PASS", "PASS"]:
                return moves
        return []
    finally:
        gg.close()


def verdicts(engine: Engine, size: int, komi: float, moves: list[str]) -> tuple[set[str], str]:
    engine.send(f"boardsize {size}")
    engine.send(f"komi {komi:g}")
    engine.send("clear_board")
    for i, m in enumerate(moves):
        engine.send(f"play {'bw'[i % 2]} {m}")
    dead = set(engine.send("final_status_list dead").split())
    return dead, engine.send("final_score")


def board(engine: Engine) -> str:
    """The position the engine holds, as its showboard draws it."""
    return engine.send("showboard", strip=False).strip("\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", type=int, default=20)
    p.add_argument("--size", type=int, default=9)
    p.add_argument("--komi", type=float, default=7.5)
    p.add_argument("--level", type=int, default=10, help="GNU Go's level (its default is 10)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--engine", default=f"{sys.executable} -m dpv.gtp --player random",
                   help="our engine's command line")
    p.add_argument("--out", help="Markdown report to write (default: print only)")
    p.add_argument("--sgf-dir", help="directory for the games' SGF files")
    p.add_argument("--save-positions", help="JSON file for the positions and GNU Go's verdicts")
    p.add_argument("--positions", help="judge these saved positions again (no GNU Go self-play)")
    args = p.parse_args(argv)

    saved = json.loads(Path(args.positions).read_text()) if args.positions else None
    ours = Engine(shlex.split(args.engine))
    gg_judge = None if saved else Engine([GNUGO, "--mode", "gtp", "--chinese-rules"])
    rows, agree, with_dead, positions = [], 0, 0, []
    boards: dict[int, str] = {}  # seed -> the board of a disagreement
    seed = args.first_seed
    try:
        while len(rows) < (len(saved) if saved else args.games):
            if saved:
                pos = saved[len(rows)]
                moves, g_dead, g_score = pos["moves"], set(pos["gnugo_dead"]), pos["gnugo_score"]
                seed = pos["seed"] + 1
            else:
                moves = selfplay(seed, args.size, args.komi, args.level, 4 * args.size * args.size)
                seed += 1
                if not moves:
                    continue
                g_dead, g_score = verdicts(gg_judge, args.size, args.komi, moves)
            level = saved[len(rows)].get("gnugo_level") if saved else args.level
            positions.append({"seed": seed - 1, "moves": moves, "gnugo_dead": sorted(g_dead),
                              "gnugo_score": g_score, "gnugo_level": level})
            o_dead, o_score = verdicts(ours, args.size, args.komi, moves)
            same = g_dead == o_dead
            if not same:
                boards[seed - 1] = board(ours)
            agree += same
            with_dead += bool(g_dead or o_dead)
            rows.append((seed - 1, len(moves), g_dead, o_dead, same, g_score, o_score))
            print(f"seed {seed - 1}: {len(moves)} moves, GNU Go dead {sorted(g_dead)}, ours "
                  f"{sorted(o_dead)} -> {'agree' if same else 'DISAGREE'}; final_score GNU Go "
                  f"{g_score}, ours {o_score}", flush=True)
            if args.sgf_dir:
                Path(args.sgf_dir).mkdir(parents=True, exist_ok=True)
                acts = [vertex_to_action(m, args.size) for m in moves]
                atomic_write_bytes(Path(args.sgf_dir) / f"gnugo_selfplay_{seed - 1:03d}.sgf",
                                   write_sgf(acts, args.size, args.komi, "GNU Go", "GNU Go",
                                             g_score).encode())
    finally:
        ours.close()
        if gg_judge is not None:
            gg_judge.close()
    if args.save_positions:
        atomic_write_bytes(args.save_positions, json.dumps(positions, indent=1).encode())

    levels = sorted({str(p["gnugo_level"]) for p in positions})
    lines = [
        f"# Dead stones: `python -m dpv.gtp` beside GNU Go ({args.size}x{args.size}, komi {args.komi:g})",
        "",
        "Command: `python scripts/dead_stones_vs_gnugo.py "
        + (f"--positions {args.positions}`" if args.positions else
           f"--games {args.games} --level {args.level} --size {args.size}`") + ".",
        f"Positions: the end of GNU Go 3.8 self-play games (level {', '.join(levels)}, Chinese "
        "rules, seed = game number, no --capture-all-dead) that ended in two passes, dead stones "
        "left on the board; GNU Go's verdicts are its `final_status_list dead` and `final_score` "
        "at its default level. Our engine: `" + args.engine.replace(sys.executable, "python")
        + "` (a player without an ownership head: 64 eye-keeping random playouts).",
        "",
        f"**Agreement: {agree}/{len(rows)}** positions with the same dead stones "
        f"({with_dead} of them hold dead stones by either judgement).",
        "",
        "| seed | moves | GNU Go dead | ours dead | agree | GNU Go final_score | ours final_score |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, n, gd, od, same, gs, os_ in rows:
        lines.append(f"| {s} | {n} | {' '.join(sorted(gd)) or '-'} | {' '.join(sorted(od)) or '-'}"
                     f" | {'yes' if same else '**no**'} | {gs} | {os_} |")
    if boards:
        lines += ["", "## The disagreements", "",
                  "Each board as our engine draws it (X Black, O White), with both verdicts.", ""]
        for s, n, gd, od, same, gs, os_ in rows:
            if s in boards:
                lines += [f"Seed {s}: GNU Go dead {' '.join(sorted(gd)) or '-'} ({gs}); ours "
                          f"{' '.join(sorted(od)) or '-'} ({os_}); GNU Go alone calls "
                          f"{' '.join(sorted(gd - od)) or '-'} dead, we alone "
                          f"{' '.join(sorted(od - gd)) or '-'}.", "", "```", boards[s], "```", ""]
    report = "\n".join(lines) + "\n"
    print(f"agreement {agree}/{len(rows)}")
    if args.out:
        atomic_write_bytes(args.out, report.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
