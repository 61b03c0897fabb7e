"""The thesis's chapter 4-5 comparisons on Fashion-MNIST, in one resumable command:

    python -m eexit_vision.fashion_study --out runs/fashion_study [--seeds 3] [--workers 2]

1. losses (ch. 4): every variant of VARIANTS trained with seeds 0..S-1 -> per-exit test accuracy,
   mean ± std, paired differences to the plain sum of CE (same seed), damping-neuron averages;
2. combiners (ch. 5): last exit, logit / weighted / softmax voting, Bayes, Bayes + CP per exit on
   every sum-of-CE model (fitted on validation, measured on test), mean ± std over seeds;
3. budgeted policies: eexit_vision.evaluate on the sum-of-CE seed-0 traces (MSDNet thresholds,
   EERO, T-Tamer, ASTI look-then-leap, entropy, patience, confidence, static exits): accuracy vs
   average FLOPs on one plot beside the budget check; later seeds too when they are trained.

Resumable per training: OUT/runs/VARIANT/seedS/result.json marks a finished training (with its
traces); a killed run resumes from its last finished epoch; a finished policy evaluation
(OUT/policies/seedS/summary.json) is not redone. The tables are rebuilt from what exists, over
the seeds every variant has finished, so a study can span sessions. Run it again to continue.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from dpv.checkpoint import atomic_write_bytes
from dpv.errors import DPVError, cli_main

from eexit_vision.config import load_vision_config
from eexit_vision.datasets import load_dataset
from eexit_vision.evaluate import anytime_rows, evaluate
from eexit_vision.loss_study import BASELINE, collect, mean_std, run_dir, tables, train_once
from eexit_vision.traces import load_trace

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "vision_fashion_mnist.yaml"
LAM = "loss.lam=0.075"  # the thesis's CIFAR-10 (10-class) damping strength
VARIANTS = {
    "sum_ce": ["loss.name=sum_ce"],
    "damping": ["loss.name=damping", LAM],
    "damping+dynamic": ["loss.name=damping", LAM, "loss.dynamic_weights=true", "loss.alpha=0.8"],
    "power_sqrt": ["loss.name=power_sqrt", LAM],
    "power_sqrt+dynamic": ["loss.name=power_sqrt", LAM, "loss.dynamic_weights=true", "loss.alpha=0.8"],
    "label_smoothing": ["loss.name=label_smoothing", "loss.smoothing=0.1"],
}
# the thesis's Table 4.8 rows (dynamic training on top of power-sqrt) and the two baselines;
# damping+dynamic is there to ask for (--variants), not run by default: 3 trainings fewer
DEFAULT_VARIANTS = ["sum_ce", "damping", "power_sqrt", "power_sqrt+dynamic", "label_smoothing"]


def jobs(variants: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """Seed-major (a cut-off study has whole seeds), the baseline's seed 0 first: the policy
    evaluation needs only it, so it can run before every loss is trained."""
    order = [(v, s) for s in seeds for v in variants]
    first = (BASELINE, seeds[0])
    return [first] + [j for j in order if j != first] if first in order else order


def combiner_table(runs: list[Path]) -> tuple[str, dict]:
    """Per-exit test accuracy (%) of every combiner on each run's traces, mean ± std over runs,
    and each combiner's paired difference to the last exit."""
    per_run = []
    for run in runs:
        val, test = load_trace(run / "val.npz"), load_trace(run / "test.npz")
        rows = anytime_rows(val, test)
        per_run.append({r["method"]: [v for k, v in r.items() if k != "method"] for r in rows[1:]})
    names = list(per_run[0])
    acc = {n: 100 * np.array([r[n] for r in per_run]) for n in names}  # (runs, K)
    k = acc[names[0]].shape[1]
    head = "| combiner | " + " | ".join(f"exit {i + 1}" for i in range(k)) + " |"
    rule = "|---|" + "---:|" * k
    over = f"mean ± std over {len(runs)} seeds" if len(runs) > 1 else "one seed"
    lines = [f"Test accuracy (%) after exits 1..k, {over} "
             "(\"oracle\": fitted on the test trace itself, an upper bound):", "", head, rule]
    lines += [f"| {n} | {mean_std(acc[n])} |" for n in names]
    lines += ["", f"Paired difference to the last exit (percentage points, same model), {over}:", "",
              head, rule]
    lines += [f"| {n} | {mean_std(acc[n] - acc['last exit'])} |" for n in names if n != "last exit"]
    return "\n".join(lines) + "\n", {n: acc[n].tolist() for n in names}


def policy_table(summaries: dict[int, dict]) -> str:
    """Per seed: test accuracy (%) and, in brackets, average FLOPs relative to the last exit of
    every policy (rows) at each budget (columns), all fitted per budget on validation."""
    lines = []
    for s in sorted(summaries):
        m = summaries[s]
        last = m["flops"][-1]
        budgets = m["budgets"]
        lines += [f"Seed {s}: test accuracy % (average FLOPs / last exit's) per budget (FLOPs / last exit's):", "",
                  "| policy | " + " | ".join(f"{b / last:.3f}" for b in budgets) + " |",
                  "|---|" + "---:|" * len(budgets)]
        for name, pts in m["policies"].items():
            at = {round(p["budget"] / last, 6): p for p in pts}
            cells = [at.get(round(b / last, 6)) for b in budgets]
            lines.append(f"| {name} | " + " | ".join(
                "-" if p is None else f"{100 * p['test_accuracy']:.2f} ({p['test_avg_flops'] / last:.3f})"
                for p in cells) + " |")
        lines += ["", f"EERO budget check, seed {s}: test average FLOPs <= budget x (1 + {m['eero_tolerance']:.0%}) "
                  f"at every budget: {'holds' if m['eero_within_budget'] else 'FAILS'} "
                  f"(largest relative excess {m['eero_max_relative_excess']:+.4f}).", ""]
        v = m.get("eero_validation_cdfs")
        if v:  # EERO with its CDFs from validation: overruns against the bound it states
            over = ", ".join(f"{o['relative_excess']:+.4f} at budget {o['budget'] / last:.3f}" for o in v["overruns"])
            lines += [f"EERO (validation CDFs), seed {s}: overruns {over or 'none'}; within its stated "
                      f"bound (probability {1 - v['delta']:.0%}): {'yes' if v['within_stated_bound'] else 'NO'}.", ""]
    return "\n".join(lines)


def plot_losses(path: Path, results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flops = np.array(results["flops"]) / 1e6
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, e in results["variants"].items():
        a = 100 * np.array(e["test_acc"])
        sd = a.std(0, ddof=1) if len(a) > 1 else 0 * a[0]
        ax.errorbar(flops, a.mean(0), yerr=sd, marker="o", capsize=3, label=name)
    ax.set(xlabel="MFLOPs (cumulative, stopping at the exit)", ylabel="test accuracy (%)",
           title=f"Fashion-MNIST losses, mean ± std over {len(results['seeds'])} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_worker_data = None  # a pool worker's dataset, loaded once per process


def _load_worker_data(config: str, extra: list[str]) -> None:
    global _worker_data
    _worker_data = load_dataset(load_vision_config(config, extra).data)


def _train_in_worker(config: str, overrides: list[str], run_path: Path) -> dict:
    return train_once(config, overrides, run_path, data=_worker_data, traces=True)


def train_in_parallel(out: Path, config: str, todo: list[tuple[str, int]], variants: dict[str, list[str]],
                      extra: list[str], workers: int, log=print) -> None:
    """The unfinished trainings of `todo`, `workers` at a time, each in its own process with
    its configured thread count (one by default, so two workers fill two cores). Results land
    in their run folders as with one worker; the sequential pass after this reads them back."""
    pending = [(v, s) for v, s in todo if not (run_dir(out, v, s) / "result.json").is_file()]
    if not pending:
        return
    log(f"training {len(pending)} runs, {workers} at a time")
    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_load_worker_data,
                             initargs=(config, extra)) as pool:
        futures = {pool.submit(_train_in_worker, config, [*extra, *variants[v], f"train.seed={s}"],
                               run_dir(out, v, s)): (v, s) for v, s in pending}
        for f in futures:  # in submission order; a failure raises here, the others keep their results
            v, s = futures[f]
            r = f.result()
            log(f"    {v} seed {s}: test acc per exit {' '.join(f'{a:.4f}' for a in r['test_acc'])} "
                f"({r['wall_s']:.0f} s)")


def run(out: Path, config: str, seeds: list[int], variants: dict[str, list[str]], extra: list[str],
        points: int, train_missing: bool = True, policies_too: bool = True, workers: int = 1,
        log=print) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(load_vision_config(config, extra).data)  # one load, shared by every training
    finished: dict[tuple[str, int], dict] = {}
    policies: dict[int, dict] = {}
    todo = jobs(list(variants), seeds)
    if workers > 1 and train_missing:
        train_in_parallel(out, config, todo, variants, extra, workers, log)
    for i, (v, s) in enumerate(todo):
        run_path = run_dir(out, v, s)
        state = "read back" if (run_path / "result.json").is_file() else "training"
        if state == "training" and not train_missing:
            log(f"[{i + 1}/{len(todo)}] {v} seed {s}: not trained yet, left out")
            continue
        log(f"[{i + 1}/{len(todo)}] {v} seed {s}: {state}")
        finished[(v, s)] = r = train_once(config, [*extra, *variants[v], f"train.seed={s}"], run_path,
                                          data=data, traces=True)
        log(f"    test acc per exit {' '.join(f'{a:.4f}' for a in r['test_acc'])} ({r['wall_s']:.0f} s)")
        if v == BASELINE and policies_too:
            policies[s] = evaluate_policies(out, run_path, s, points, log)
    # tables over the variants trained at the first seed and the seeds all of them have finished
    present = [v for v in variants if (v, seeds[0]) in finished]
    if BASELINE not in present:
        raise DPVError(f"{BASELINE} seed {seeds[0]} is not trained yet; nothing to tabulate")
    complete = [s for s in seeds if all((v, s) in finished for v in present)]
    results = {"variants": {}, "flops": None, "seeds": complete}
    for s in complete:
        for v in present:
            collect(results, v, variants[v], finished[(v, s)])
    loss_md = tables(results)
    missing = [f"{v} seed {s}" for s in seeds for v in variants if (v, s) not in finished]
    if missing:
        loss_md += f"\nNot trained yet (left out above): {', '.join(missing)}.\n"
    comb_md, comb = combiner_table([run_dir(out, BASELINE, s) for s in complete])
    pol_md = policy_table(policies) if policies else "No policy evaluation yet.\n"
    atomic_write_bytes(out / "losses.md", loss_md.encode())
    atomic_write_bytes(out / "combiners.md", comb_md.encode())
    atomic_write_bytes(out / "policies.md", pol_md.encode())
    plot_losses(out / "losses.png", results)
    wall = {f"{v}/seed{s}": r["wall_s"] for (v, s), r in finished.items()}
    study = {"seeds": complete, "variants": variants, "losses": results, "combiners": comb,
             "policy_seeds": sorted(policies), "training_wall_s": wall,
             "this_call_wall_s": time.perf_counter() - t0}
    atomic_write_bytes(out / "study.json", json.dumps(study, indent=1).encode())
    return study


def evaluate_policies(out: Path, run_path: Path, seed: int, points: int, log) -> dict:
    where = out / "policies" / f"seed{seed}"
    if (where / "summary.json").is_file():
        return json.loads((where / "summary.json").read_text())
    t0 = time.perf_counter()
    val, test = load_trace(run_path / "val.npz"), load_trace(run_path / "test.npz")
    budgets = np.linspace(val.flops[0], val.flops[-1], points)
    summary = evaluate(val, test, where, budgets, progress=False)
    summary["wall_s"] = time.perf_counter() - t0
    atomic_write_bytes(where / "summary.json", json.dumps(summary, indent=1).encode())
    log(f"    policies on seed {seed}: EERO within budget {summary['eero_within_budget']} "
        f"({summary['wall_s']:.0f} s)")
    return summary


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.fashion_study", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override applied to every training (e.g. train.epochs=1 for a smoke run)")
    ap.add_argument("--points", type=int, default=12, help="budgets in the policy sweep")
    ap.add_argument("--workers", type=int, default=1,
                    help="trainings at once, one process each (2 on a 2-core machine: train.threads is 1)")
    ap.add_argument("--no-train", action="store_true",
                    help="train nothing: tabulate (and evaluate policies on) the finished trainings")
    ap.add_argument("--skip-policies", action="store_true",
                    help="train and tabulate only; the policy evaluation waits for a later call")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        raise DPVError(f"--seeds must be >= 1, got {args.seeds}")
    if BASELINE not in args.variants:
        raise DPVError(f"--variants must include {BASELINE}: the paired differences and policies need it")
    if args.points < 2:
        raise DPVError(f"--points must be >= 2, got {args.points}")
    if args.workers < 1:
        raise DPVError(f"--workers must be >= 1, got {args.workers}")
    study = run(args.out, args.config, list(range(args.seeds)), {v: VARIANTS[v] for v in args.variants},
                args.set, args.points, train_missing=not args.no_train,
                policies_too=not args.skip_policies, workers=args.workers)
    for f in ("losses.md", "combiners.md", "policies.md"):
        print((args.out / f).read_text())
    print(f"trainings finished: {len(study['training_wall_s'])}, their wall time "
          f"{sum(study['training_wall_s'].values()) / 60:.1f} min; this call {study['this_call_wall_s'] / 60:.1f} min")
    print(f"plots: {args.out / 'losses.png'}, {args.out}/policies/seed*/budget_curves.png")


if __name__ == "__main__":
    main()
