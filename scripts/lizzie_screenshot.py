"""Lizzie analysing with `python -m dpv.gtp` as its engine, under Xvfb: a screenshot and the
GTP traffic of the session.

    apt-get install -y liblizzie-java default-jre xvfb xdotool
    pip install Pillow                                    # for the screenshot
    python scripts/lizzie_screenshot.py --out docs/lizzie_analysis.png --log docs/lizzie_gtp_log.md

What it does: writes a Lizzie config in a scratch home (`leelaz.engine-command` = our engine,
`leelaz.print-comms` on, `ui.board-size` 9, window positions), starts Xvfb and Lizzie 0.7.4
(Java takes its home from the password file: JAVA_TOOL_OPTIONS=-Duser.home=... points it
at the scratch one) on a short opening, waits for Lizzie's analysis command, presses space
(analysis off: Lizzie sends `name`) and space again (on: the analysis command again), lets it
analyse, takes the screenshot with Pillow, and stops Lizzie and Xvfb.

Why `--override-version 0.17`: Lizzie 0.7.4 reads the `version` reply as a Leela Zero
version; for DPV's own "0.1.0" it shows a modal warning from its reader thread while holding
its engine lock, and closing that dialog deadlocks it (the event thread waits for the same
lock to paint). Lizzie's other mode is KataGo's, chosen when `name` starts with "KataGo".
The honest way is the one KataGo itself offers for Lizzie: `name` stays DPV, and the user
asks the engine to answer `version` with the Leela Zero protocol level its `lz-analyze`
speaks (0.17's lines, with lcb).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPENING = ["E5", "C4", "G4", "D7", "F7", "C6"]  # a short 9x9 opening for Lizzie to load
LIZZIE_JAR = "/usr/share/java/lizzie.jar"


def free_display() -> str:
    for n in range(90, 100):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return f":{n}"
    raise SystemExit("no free X display between :90 and :99")


def wait_for(path: Path, text: str, after: int, timeout: float) -> int:
    """Wait until `text` appears in the log `path` after character `after`; its position."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            found = path.read_text(errors="replace").find(text, after)
            if found >= 0:
                return found
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {text.strip()!r} in {path}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def excerpt(engine_log: str, groups: int = 3, per_reply: int = 3) -> list[str]:
    """The engine's log with each info line cut to its first `groups` candidates and only
    the first `per_reply` info lines of each analysis reply kept (the rest counted)."""
    out: list[str] = []
    shown = skipped = 0
    for ln in engine_log.splitlines():
        if " > info move " not in ln:
            if skipped:
                out.append(f"          ... {skipped} more info lines")
            shown = skipped = 0
            out.append(ln)
            continue
        if shown >= per_reply:
            skipped += 1
            continue
        shown += 1
        head, body = ln.split(" > ", 1)
        parts = body.split(" info move ")
        cut = " info move ".join(parts[:groups])
        if len(parts) > groups:
            cut += f" ... ({len(parts) - groups} more candidates)"
        out.append(f"{head} > {cut}")
    if skipped:
        out.append(f"          ... {skipped} more info lines")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="default: a randomly initialised configs/go9.yaml net")
    p.add_argument("--engine-args", default="--mode dynamic --n-ref 64 --tau0 0.3 --alpha 0.5",
                   help="options for python -m dpv.gtp")
    p.add_argument("--seconds", type=float, default=15.0, help="analysis time before the screenshot")
    p.add_argument("--out", default="docs/lizzie_analysis.png")
    p.add_argument("--log", default="docs/lizzie_gtp_log.md", help="GTP log excerpt (Markdown)")
    args = p.parse_args(argv)
    for tool in ("Xvfb", "xdotool", "java"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y liblizzie-java default-jre xvfb xdotool")
    if not Path(LIZZIE_JAR).exists():
        raise SystemExit(f"{LIZZIE_JAR} not found: apt-get install -y liblizzie-java")
    from PIL import ImageGrab

    from dpv.games.coords import vertex_to_action
    from dpv.play.sgf import write_sgf

    with tempfile.TemporaryDirectory(prefix="lizzie_") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        ckpt = args.checkpoint
        if ckpt is None:
            from dpv.play.experiments import untrained_checkpoint

            ckpt = str(untrained_checkpoint(ROOT / "configs/go9.yaml", tmp / "go9.pt"))
        engine_log = tmp / "engine.log"
        engine = (f"{sys.executable} -m dpv.gtp --checkpoint {ckpt} {args.engine_args} "
                  f"--override-version 0.17 --log {engine_log}")
        config = home / ".config/leela-zero/lizzie-config.txt"
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({"leelaz": {"engine-command": engine, "print-comms": True},
                                      "ui": {"board-size": 9}}))
        persist = home / ".local/share/leela-zero/lizzie-persist"
        persist.parent.mkdir(parents=True)
        persist.write_text(json.dumps({"ui-persist": {"main-window-position": [0, 0, 880, 700],
                                                      "gtp-console-position": [880, 0, 400, 700]}}))
        opening = tmp / "opening.sgf"
        opening.write_text(write_sgf([vertex_to_action(v, 9) for v in OPENING], 9, 7.5,
                                     "DPV opening", "DPV opening"))
        display = free_display()
        env = {**os.environ, "DISPLAY": display, "JAVA_TOOL_OPTIONS": f"-Duser.home={home}"}
        xvfb = lizzie = None
        lizzie_out = tmp / "lizzie.out"
        try:
            xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
            with open(lizzie_out, "w") as out:
                lizzie = subprocess.Popen(["java", "-jar", LIZZIE_JAR, str(opening)], cwd=tmp, env=env,
                                          stdout=out, stderr=subprocess.STDOUT)
            print(f"Lizzie on {display}; engine: {engine}", flush=True)
            def key(name: str) -> None:
                """A key to Lizzie's main window: a click on its captures panel (top left,
                where a click does nothing else) gives it the keyboard first."""
                subprocess.run(["xdotool", "mousemove", "50", "80", "click", "1", "key", name],
                               env=env, check=True)

            at = wait_for(engine_log, "-analyze", 0, 180)  # Lizzie starts analysing by itself
            at = wait_for(engine_log, "> info move", at, 120)
            print("Lizzie sent its analysis command; End (to the opening's last move), "
                  "then space (analysis off) and space (on)", flush=True)
            for attempt in range(6):  # Lizzie ignores keys until it has loaded: try again
                time.sleep(5)
                key("End")
                try:
                    at = wait_for(engine_log, " play ", at, 15)
                    break
                except SystemExit:
                    if attempt == 5:
                        raise
            at = wait_for(engine_log, "-analyze", at, 60)
            key("space")
            at = wait_for(engine_log, " name", at, 60)
            key("space")
            wait_for(engine_log, "-analyze", at, 60)
            # the pointer off the board: over a candidate, Lizzie would draw its variation
            subprocess.run(["xdotool", "mousemove", "1270", "715"], env=env, check=True)
            time.sleep(args.seconds)
            shot = ImageGrab.grab(xdisplay=display)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            shot.quantize(256).save(args.out, optimize=True)  # a screenshot: 256 colours do
            print(f"wrote {args.out} ({shot.size[0]}x{shot.size[1]})")
        finally:
            stop(lizzie)
            stop(xvfb)
        sent = [ln for ln in lizzie_out.read_text(errors="replace").splitlines() if ln.startswith(">")]
        log_lines = excerpt(engine_log.read_text(errors="replace"))
    text = ["# Lizzie 0.7.4 driving `python -m dpv.gtp` (GTP log)", "",
            f"Made by `python scripts/lizzie_screenshot.py` (screenshot: `{args.out}`).",
            "Engine command Lizzie ran: `python -m dpv.gtp --checkpoint <untrained go9 net> "
            f"{args.engine_args} --override-version 0.17 --log engine.log`.", "",
            "## Commands Lizzie sent (its own log, `leelaz.print-comms`)", "", "```",
            *sent, "```", "",
            "## The engine's side (`--log`: `<` in, `>` out, seconds since start)", "",
            "Info lines are cut to their first three candidates, and only the first three of",
            "each analysis are shown; Lizzie got them all, whole.", "",
            "```", *log_lines, "```", ""]
    Path(args.log).write_text("\n".join(text))
    print(f"wrote {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
