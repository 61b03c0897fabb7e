"""Does the engine keep to its clock? 30 `genmove`s under `time_settings 0 1 1` (Canadian
byo-yomi: 1 second for every move), timed as the controller sees them (command sent to reply
read), over GTP like a GUI or gogui-twogtp.

    python scripts/gtp_time_check.py                       # an untrained go9 net, dynamic mode
    python scripts/gtp_time_check.py --checkpoint runs/go9/best.pt --mode fixed_budget

Prints every move's time, the slowest, and whether all stayed within the 1 s period. This is
a check to run, not a timed test: the times depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpv.play.gtp_protocol import read_reply  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="default: a randomly initialised configs/go9.yaml net")
    p.add_argument("--mode", default="dynamic")
    p.add_argument("--moves", type=int, default=30)
    p.add_argument("--period", type=int, default=1, help="byo-yomi seconds per move")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            from dpv.play.experiments import untrained_checkpoint

            ckpt = str(untrained_checkpoint("configs/go9.yaml", Path(tmp) / "go9.pt"))
        argv_engine = [sys.executable, "-m", "dpv.gtp", "--checkpoint", ckpt, "--mode", args.mode,
                       "--n-ref", "64", "--tau0", "0.3", "--alpha", "0.5"]
        print("engine:", shlex.join(argv_engine), flush=True)
        proc = subprocess.Popen(argv_engine, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

        def ask(command: str) -> tuple[str, float]:
            t0 = time.perf_counter()
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            reply = read_reply(proc.stdout)
            seconds = time.perf_counter() - t0
            if reply is None or not reply.ok:
                raise SystemExit(f"{command!r} failed: {reply}")
            return reply.text, seconds

        ask("boardsize 9")
        ask("clear_board")
        _, calibrate = ask(f"time_settings 0 {args.period} 1")
        print(f"time_settings 0 {args.period} 1 answered in {calibrate:.2f} s "
              "(the engine measures its per-exit latency here)")
        times = []
        for i in range(args.moves):
            colour = "bw"[i % 2]
            move, seconds = ask(f"genmove {colour}")
            times.append(seconds)
            print(f"move {i + 1:2d} genmove {colour} -> {move:5s} {seconds:.3f} s", flush=True)
            if move.lower() == "resign":
                break
        ask("quit")
        proc.wait(timeout=30)
        latency = [ln for ln in proc.stderr.read().splitlines() if "latency" in ln]
    if latency:
        print(latency[-1])
    slowest = max(times)
    ok = slowest < args.period
    print(f"slowest of {len(times)} genmoves: {slowest:.3f} s; mean {sum(times) / len(times):.3f} s; "
          f"{'all within' if ok else 'NOT all within'} the {args.period} s period")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
