"""Record exit traces: `python -m eexit_vision.record_traces --checkpoint C --split val|test --out F.npz`.

Runs a trained classifier over one split and records every exit's class logits, the labels
and the cumulative FLOPs of stopping at each exit (staged forward: every earlier head was
computed too), in the format of eexit_vision.traces: the input of every offline evaluation.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from dpv.errors import cli_main

from eexit_vision.checkpoints import load_classifier_payload, model_id
from eexit_vision.datasets import SPLITS, Split, load_dataset
from eexit_vision.models import Classifier
from eexit_vision.traces import Trace, save_trace


@torch.no_grad()
def record_trace(net: Classifier, split: Split, split_name: str, device: torch.device | str = "cpu",
                 batch: int = 512) -> Trace:
    net.eval()
    chunks = []
    for i in range(0, len(split), batch):
        outs = net(split.x[i:i + batch].to(device))
        chunks.append(torch.stack([net.class_logits(o) for o in outs]).float().cpu())
    logits = torch.cat(chunks, dim=1).numpy()
    return Trace(logits, split.y.numpy(), net.flops().staged_all(), net.num_classes,
                 model_id(net), split_name)


def trace_checkpoint(checkpoint: str, split: str, out: str, data_root: str | None = None,
                     device: str = "cpu") -> Trace:
    net, cfg, _ = load_classifier_payload(checkpoint, device)
    data_cfg = cfg.data if data_root is None else dataclasses.replace(cfg.data, root=data_root)
    data = load_dataset(data_cfg)  # same config and seed -> the split the model was validated on
    trace = record_trace(net, data.split(split), split, device)
    save_trace(out, trace)
    return trace


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.record_traces", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--split", required=True, choices=SPLITS)
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--data-root", help="CIFAR folder, if it moved since training")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t = trace_checkpoint(args.checkpoint, args.split, args.out, args.data_root, args.device)
    acc = (t.logits.argmax(-1) == t.labels[None]).mean(1)
    print(f"wrote {args.out}: {t.num_exits} exits x {t.size} samples x {t.num_classes} classes, "
          f"model {t.model_id}; accuracy per exit " + " ".join(f"{a:.4f}" for a in acc))


if __name__ == "__main__":
    main()
