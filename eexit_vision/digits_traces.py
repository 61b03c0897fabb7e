"""Train the default digits model and write its validation and test traces, in one command:

    python -m eexit_vision.digits_traces --out runs/digits_traces [--set loss.name=damping ...]

Writes OUT/run/last.pt, OUT/val.npz and OUT/test.npz (about 15 s on one CPU thread).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dpv.errors import cli_main

from eexit_vision.config import load_vision_config
from eexit_vision.train import train
from eexit_vision.record_traces import trace_checkpoint

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "vision_digits.yaml"


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.digits_traces", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args(argv)
    out = Path(args.out)
    cfg = load_vision_config(args.config, [*args.set, f"train.out={out / 'run'}", "train.progress=false"])
    res = train(cfg, log=lambda s: None)
    for split in ("val", "test"):
        t = trace_checkpoint(str(res.checkpoint), split, str(out / f"{split}.npz"))
        print(f"wrote {out / f'{split}.npz'} ({t.size} samples, model {t.model_id})")


if __name__ == "__main__":
    main()
