"""Anytime table (accuracy and FLOPs per exit) from traces, as Markdown.

`python -m eexit_vision.anytime TEST.npz [--val VAL.npz]`: with --val the two traces must come
from the same model (eexit_vision.traces.check_same_model), else one error line.
"""
from __future__ import annotations

import argparse

import numpy as np

from dpv.errors import cli_main

from eexit_vision.traces import Trace, check_same_model, load_trace


def exit_accuracy(trace: Trace) -> np.ndarray:
    return (trace.logits.argmax(-1) == trace.labels[None]).mean(1)


def anytime_markdown(columns: dict[str, np.ndarray], flops: np.ndarray) -> str:
    """One row per exit: FLOPs, FLOPs relative to the last exit, then each accuracy column."""
    names = list(columns)
    lines = ["| exit | FLOPs | relative | " + " | ".join(names) + " |",
             "|---:|---:|---:|" + "---:|" * len(names)]
    for k, f in enumerate(flops):
        accs = " | ".join(f"{100 * columns[n][k]:.2f}%" for n in names)
        lines.append(f"| {k + 1} | {f:.3e} | {f / flops[-1]:.3f} | {accs} |")
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.anytime", description=__doc__.splitlines()[0])
    ap.add_argument("trace", help="trace .npz (usually the test split)")
    ap.add_argument("--val", help="validation trace of the same model, shown beside it")
    args = ap.parse_args(argv)
    test = load_trace(args.trace)
    columns = {}
    if args.val:
        val = load_trace(args.val)
        check_same_model(val, test)
        columns[f"{val.split or 'val'} accuracy"] = exit_accuracy(val)
    columns[f"{test.split or 'trace'} accuracy"] = exit_accuracy(test)
    print(anytime_markdown(columns, test.flops))


if __name__ == "__main__":
    main()
