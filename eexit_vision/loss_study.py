"""Loss study: train one config with several losses over several seeds and tabulate per-exit
test accuracy (thesis Table 4.7 style: mean +- std over seeds, and the paired difference to
the plain sum of CE) plus the damping-neuron averages per exit (Table 4.8).

    python -m eexit_vision.loss_study --config configs/vision_digits.yaml --seeds 5 --out DIR

Writes DIR/results.json (every run) and DIR/tables.md. Progress bar over the runs.
Resumable per training: a run whose DIR/runs/VARIANT/seedS/result.json exists is read back,
not retrained, and one cut off mid-way resumes from its last finished epoch.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import DPVError, cli_main

from eexit_vision.anytime import anytime_markdown
from eexit_vision.checkpoints import load_classifier_payload
from eexit_vision.config import load_vision_config
from eexit_vision.datasets import Dataset, load_dataset
from eexit_vision.record_traces import record_trace
from eexit_vision.traces import save_trace
from eexit_vision.train import train

BASELINE = "sum_ce"
# variant name -> config overrides; lambda 0.075 is the thesis's CIFAR-10 (10-class) value
DEFAULT_VARIANTS = {
    "sum_ce": ["loss.name=sum_ce"],
    "damping": ["loss.name=damping", "loss.lam=0.075"],
    "power_sqrt": ["loss.name=power_sqrt", "loss.lam=0.075"],
    "power_sqrt+dynamic": ["loss.name=power_sqrt", "loss.lam=0.075", "loss.dynamic_weights=true",
                           "loss.alpha=0.8"],
    "label_smoothing": ["loss.name=label_smoothing", "loss.smoothing=0.1"],
}


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """'name=override,override' -> (name, overrides); e.g. 'damping_0.025=loss.name=damping,loss.lam=0.025'."""
    if "=" not in spec:
        raise DPVError(f"variant {spec!r} must look like NAME=section.key=value,...")
    name, rest = spec.split("=", 1)
    return name, [o for o in rest.split(",") if o]


def run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / variant / f"seed{seed}"


def train_once(config: str | None, overrides: list[str], run: Path, data: Dataset | None = None,
               traces: bool = False) -> dict:
    """One training of a study, resumable: a finished run (run/result.json) is read back; a run
    cut off mid-way resumes from its last epoch. `traces` also writes run/val.npz, run/test.npz."""
    done = run / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = load_vision_config(config, [*overrides, f"train.out={run}", "train.progress=false",
                                      "train.tensorboard=false"])
    resumed_from = _epochs_done(run / "last.pt")
    t0, c0 = time.perf_counter(), time.process_time()
    res = train(cfg, resume=True, data=data, log=lambda line: None)
    if traces:
        net = load_classifier_payload(res.checkpoint)[0]
        data = data or load_dataset(cfg.data)
        for split in ("val", "test"):
            save_trace(run / f"{split}.npz", record_trace(net, data.split(split), split))
    result = {"overrides": overrides, "val_acc": res.val_accuracy.tolist(),
              "test_acc": res.test_accuracy.tolist(),
              "damping": None if res.test_damping is None else res.test_damping.tolist(),
              "flops": res.flops.tolist(), "wall_s": time.perf_counter() - t0,
              # CPU seconds of this process: on a shared machine, closer to the time it takes alone
              "cpu_s": time.process_time() - c0,
              "resumed_from_epoch": resumed_from}
    atomic_write_bytes(done, json.dumps(result, indent=1).encode())
    return result


def _epochs_done(ckpt: Path) -> int:
    if not ckpt.is_file():
        return 0
    return int(load_classifier_payload(ckpt)[2]["epoch"]) + 1


def collect(results: dict, variant: str, overrides: list[str], run: dict) -> None:
    entry = results["variants"].setdefault(variant, {"overrides": overrides, "test_acc": [], "damping": []})
    entry["test_acc"].append(run["test_acc"])
    entry["damping"].append(run["damping"])
    results["flops"] = run["flops"]


def run_study(config: str | None, variants: dict[str, list[str]], seeds: list[int], out: Path,
              extra: list[str]) -> dict:
    results: dict = {"variants": {}, "flops": None, "seeds": seeds}
    jobs = [(v, s) for s in seeds for v in variants]
    for v, s in tqdm(jobs, desc="loss study", dynamic_ncols=True):
        run = train_once(config, [*extra, *variants[v], f"train.seed={s}"], run_dir(out, v, s))
        collect(results, v, variants[v], run)
        atomic_write_bytes(out / "results.json", json.dumps(results, indent=1).encode())
    return results


def mean_std(a: np.ndarray) -> str:
    """Table cells of a (seeds, columns) array: mean ± std over seeds; one seed has no spread,
    so its values stand alone (a "± 0.00" would claim a spread nobody measured)."""
    if len(a) == 1:
        return " | ".join(f"{m:.2f}" for m in a[0])
    return " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(a.mean(0), a.std(0, ddof=1)))


def tables(results: dict) -> str:
    flops = np.array(results["flops"])
    v = results["variants"]
    accs = {name: np.array(e["test_acc"]) * 100 for name, e in v.items()}  # (seeds, K)
    k = flops.shape[0]
    n = len(results["seeds"])
    head = "| method | " + " | ".join(f"exit {i + 1}" for i in range(k)) + " | avg |"
    rule = "|---|" + "---:|" * (k + 1)
    out = [f"Test accuracy (%) per exit, mean ± std over {n} seeds:" if n > 1 else
           "Test accuracy (%) per exit, one seed (no spread yet):", "", head, rule]
    for name, a in accs.items():
        out.append(f"| {name} | {mean_std(np.concatenate([a, a.mean(1, keepdims=True)], 1))} |")
    if BASELINE in accs:
        out += ["", f"Paired difference to {BASELINE} (percentage points, same seed), " + ("mean ± std:" if n > 1 else "one seed:"), "", head, rule]
        for name, a in accs.items():
            if name == BASELINE:
                continue
            d = a - accs[BASELINE]
            out.append(f"| {name} | {mean_std(np.concatenate([d, d.mean(1, keepdims=True)], 1))} |")
    damp = {name: np.array(e["damping"], dtype=float) for name, e in v.items() if e["damping"][0] is not None}
    if damp:
        out += ["", "Damping-neuron average softmax per exit on the test split (Table 4.8 style), "
                "mean over seeds:", "", "| method | " + " | ".join(f"exit {i + 1}" for i in range(k)) + " |",
                "|---|" + "---:|" * k]
        for name, a in damp.items():
            out.append(f"| {name} | " + " | ".join(f"{x:.4f}" for x in a.mean(0)) + " |")
    out += ["", f"Anytime table, seed {results['seeds'][0]} of each loss (test accuracy):", "",
            anytime_markdown({name: a[0] / 100 for name, a in accs.items()}, flops)]
    return "\n".join(out) + "\n"


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.loss_study", description=__doc__.splitlines()[0])
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override applied to every run")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=section.key=value,... (repeatable; default: the five built-in losses)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    variants = dict(parse_variant(s) for s in args.variant) if args.variant else DEFAULT_VARIANTS
    out = Path(args.out)
    results = run_study(args.config, variants, list(range(args.seeds)), out, args.set)
    md = tables(results)
    atomic_write_bytes(out / "tables.md", md.encode())
    print(md)


if __name__ == "__main__":
    main()
