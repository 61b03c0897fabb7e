"""Dead stones: our engine's judgement beside GNU Go's, on positions where GNU Go's self-play
games ended in two passes with dead stones left on the board (no --capture-all-dead).

    python scripts/dead_stones_vs_gnugo.py --games 20 --out docs/dead_stones_vs_gnugo.md

Each game: one GNU Go plays both colours (`genmove b` / `genmove w`, seed = game number)
until two passes; GNU Go answers `final_status_list dead` and `final_score`; the same moves
are played into `python -m dpv.gtp` (over GTP, as a GUI would), which answers the same two
commands. A position agrees when both name the same dead stones. GNU Go's judgement is a
reference, not a referee: the disagreements are listed so a reader can look at them.
"""
from __future__ import annotations

import argparse
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

    def send(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = read_reply(self.proc.stdout)
        if reply is None:
            raise RuntimeError(f"{self.argv[0]} exited during {command!r}")
        if not reply.ok:
            raise RuntimeError(f"{self.argv[0]} refused {command!r}: {reply.text}")
        return reply.text.strip()

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
    args = p.parse_args(argv)

    ours = Engine(shlex.split(args.engine))
    gg_judge = Engine([GNUGO, "--mode", "gtp", "--chinese-rules"])  # default level, as a referee
    rows, agree, with_dead = [], 0, 0
    seed = args.first_seed
    try:
        while len(rows) < args.games:
            moves = selfplay(seed, args.size, args.komi, args.level, 4 * args.size * args.size)
            seed += 1
            if not moves:
                continue
            g_dead, g_score = verdicts(gg_judge, args.size, args.komi, moves)
            o_dead, o_score = verdicts(ours, args.size, args.komi, moves)
            same = g_dead == o_dead
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
        gg_judge.close()

    lines = [
        f"# Dead stones: `python -m dpv.gtp` beside GNU Go ({args.size}x{args.size}, komi {args.komi:g})",
        "",
        f"Command: `python scripts/dead_stones_vs_gnugo.py --games {args.games} --level {args.level}"
        f" --size {args.size}`.",
        f"Positions: the end of GNU Go 3.8 self-play games (level {args.level}, Chinese rules, "
        "seed = game number) that ended in two passes, dead stones left on the board.",
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
    report = "\n".join(lines) + "\n"
    print(f"agreement {agree}/{len(rows)}")
    if args.out:
        atomic_write_bytes(args.out, report.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
