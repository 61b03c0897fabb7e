"""Synthetic studies that need neither training nor traces.

  python -m eexit_vision.studies bayes --out DIR    thesis 5.4.2 (Figs 5.4-5.7): Bayesian
      updating over exits whose confusion matrices are drawn from a Dirichlet law, with the
      oracle likelihood vs one estimated from m validation samples per class.
  python -m eexit_vision.studies ttamer --out DIR   T-Tamer app. D.3: if-stop matrices of the
      recall DP for loss sequences drawn from several laws on [0, 1] (cost 0.1 per ramp), and
      the recall policy against the no-recall threshold rule (exact expectations).
  python -m eexit_vision.studies eero-budget --out DIR   EERO's budget on held-out data:
      6 seeds x 8 budgets on synthetic traces, calibrated on the unlabelled test batch it serves
      (average FLOPs never above the budget) and on the validation split (every overrun listed,
      against the DKW bound of eexit_vision.policies.eero).

Also `synthetic_trace`, a cheap multi-exit trace (deeper exits more accurate) for tests and demos.
"""
from __future__ import annotations

import argparse
import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from dpv.errors import DPVError, cli_main
from eexit_vision.policies.eero import EERO
from eexit_vision.policies.offline import evaluate_policy
from eexit_vision.policies.ttamer import LossChain, solve_no_recall, solve_recall, threshold_loss
from eexit_vision.traces import Trace


def synthetic_trace(seed: int, n: int = 500, num_exits: int = 4, num_classes: int = 5,
                    model_id: str = "synthetic", split: str = "") -> Trace:
    """Logits = signal on the true class growing with depth + noise shared across exits (so
    exits agree more than independent classifiers would) + noise of each exit."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(num_classes, size=n)
    difficulty = rng.gamma(2.0, 0.5, size=n)  # hard samples get a weaker signal at every exit
    shared = rng.normal(size=(n, num_classes))
    model_rng = np.random.default_rng(zlib.crc32(model_id.encode()))  # one model, one profile
    strength = np.linspace(0.6, 2.4, num_exits) * model_rng.uniform(0.9, 1.1)
    logits = np.empty((num_exits, n, num_classes), dtype=np.float32)
    for k in range(num_exits):
        z = 0.8 * shared + 0.6 * rng.normal(size=(n, num_classes))
        z[np.arange(n), labels] += strength[k] * 2.0 / (0.5 + difficulty)
        logits[k] = 2.0 * z
    flops = np.cumsum(np.linspace(1.0, 2.0, num_exits)) * 1e6
    return Trace(logits, labels, flops, num_classes, model_id, split)


# ---------------------------------------------------------------- Bayes study (thesis 5.4.2)

def dirichlet_confusions(rng: np.random.Generator, num_exits: int, num_classes: int,
                         accuracy: float) -> np.ndarray:
    """(E, C, C) P(output | label): rows ~ Dirichlet(1, .., a at the label, .., 1) with
    a = acc (C-1)/(1-acc), so the expected mass on the correct label is `accuracy`; the correct
    label is then swapped to be the row's largest entry (thesis: it has the highest probability)."""
    a = accuracy * (num_classes - 1) / (1.0 - accuracy)
    alpha = np.ones((num_classes, num_classes)) + np.eye(num_classes) * (a - 1.0)
    out = np.empty((num_exits, num_classes, num_classes))
    for e in range(num_exits):
        g = rng.gamma(alpha)
        p = g / g.sum(axis=1, keepdims=True)
        top = p.argmax(axis=1)
        rows = np.arange(num_classes)
        diag = p[rows, rows].copy()
        p[rows, rows] = p[rows, top]
        p[rows, top] = diag
        out[e] = p
    return out


def estimate_confusions(rng: np.random.Generator, true: np.ndarray, samples_per_class: int,
                        smoothing: float = 1.0) -> np.ndarray:
    counts = rng.multinomial(samples_per_class, true)  # (E, C, C)
    c = counts + smoothing
    return c / c.sum(axis=-1, keepdims=True)


def sample_outputs(rng: np.random.Generator, confusions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(E, T) output of each exit for each trial, independent given the label."""
    out = np.empty((len(confusions), len(labels)), dtype=np.int64)
    for e, p in enumerate(confusions):
        cdf = np.cumsum(p[labels], axis=1)
        u = rng.random((len(labels), 1)) * cdf[:, -1:]
        out[e] = (cdf < u).sum(axis=1)
    return out


def bayes_curve(likelihood: np.ndarray, outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (E,) and posterior mass on the true label (E, T) after each exit."""
    e_n, t = outputs.shape
    logpost = np.zeros((t, likelihood.shape[1]))
    acc, mass = np.empty(e_n), np.empty((e_n, t))
    for e in range(e_n):
        logpost += np.log(likelihood[e][:, outputs[e]].T)
        logpost -= logpost.max(axis=1, keepdims=True)
        post = np.exp(logpost)
        post /= post.sum(axis=1, keepdims=True)
        acc[e] = (post.argmax(axis=1) == labels).mean()
        mass[e] = post[np.arange(t), labels]
    return acc, mass


@dataclass
class BayesSetting:
    figure: str
    label: str
    num_classes: int
    samples_per_class: int
    accuracy: float


def bayes_settings() -> list[BayesSetting]:
    s = [BayesSetting("5.4", "CIFAR-100-like", 100, 50, 0.5),
         BayesSetting("5.4", "ImageNet-like", 1000, 200, 0.5)]
    s += [BayesSetting("5.5", f"m={m}", 100, m, 0.5) for m in (50, 100, 200, 400)]
    s += [BayesSetting("5.6", f"C={c}", c, c, 0.5) for c in (10, 100, 1000)]
    s += [BayesSetting("5.7", f"acc={a}", 100, 100, a) for a in (0.2, 0.35, 0.5, 0.65, 0.8)]
    return s


def run_bayes_study(out: Path, num_exits: int = 7, trials: int = 2000, seed: int = 0,
                    settings: list[BayesSetting] | None = None) -> list[dict]:
    rows = []
    for i, st in enumerate(settings or bayes_settings()):
        rng = np.random.default_rng([seed, i])
        true = dirichlet_confusions(rng, num_exits, st.num_classes, st.accuracy)
        est = estimate_confusions(rng, true, st.samples_per_class)
        labels = rng.integers(st.num_classes, size=trials)
        outputs = sample_outputs(rng, true, labels)
        single = (outputs == labels[None]).mean(axis=1)  # each exit alone
        for kind, lik in (("oracle", true), ("estimated", est)):
            acc, mass = bayes_curve(lik, outputs, labels)
            for e in range(num_exits):
                q05, q50, q95 = np.quantile(mass[e], [0.05, 0.5, 0.95])
                rows.append(dict(figure=st.figure, setting=st.label, classes=st.num_classes,
                                 samples_per_class=st.samples_per_class, exit_accuracy=st.accuracy,
                                 likelihood=kind, exits=e + 1, accuracy=float(acc[e]),
                                 single_exit_accuracy=float(single[e]), true_mass_q05=float(q05),
                                 true_mass_median=float(q50), true_mass_q95=float(q95)))
    write_table(out / "bayes_study", rows)
    plot_bayes(out, rows)
    return rows


def plot_bayes(out: Path, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for fig_id in dict.fromkeys(r["figure"] for r in rows):
        sel = [r for r in rows if r["figure"] == fig_id]
        settings = list(dict.fromkeys(r["setting"] for r in sel))
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for s in settings:
            for kind, style in (("oracle", "-"), ("estimated", "--")):
                pts = [r for r in sel if r["setting"] == s and r["likelihood"] == kind]
                x = [r["exits"] for r in pts]
                line, = axes[0].plot(x, [r["accuracy"] for r in pts], style, label=f"{s} {kind}")
                axes[1].fill_between(x, [r["true_mass_q05"] for r in pts], [r["true_mass_q95"] for r in pts],
                                     alpha=0.15, color=line.get_color())
                axes[1].plot(x, [r["true_mass_median"] for r in pts], style, color=line.get_color())
        axes[0].set(xlabel="number of exits (Bayesian updates)", ylabel="accuracy", title=f"Fig. {fig_id}: accuracy")
        axes[1].set(xlabel="number of exits", ylabel="posterior on true label (5-95%)", title="posterior mass")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"bayes_fig{fig_id.replace('.', '_')}.png", dpi=110)
        plt.close(fig)
    # Fig. 5.7 also against classifier quality: final accuracy vs per-exit accuracy
    sel = [r for r in rows if r["figure"] == "5.7" and r["exits"] == max(x["exits"] for x in rows)]
    if not sel:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for kind in ("oracle", "estimated"):
        pts = [r for r in sel if r["likelihood"] == kind]
        ax.plot([r["exit_accuracy"] for r in pts], [r["accuracy"] for r in pts], "o-", label=f"Bayes, {kind}")
    pts = [r for r in sel if r["likelihood"] == "oracle"]
    ax.plot([r["exit_accuracy"] for r in pts], [r["single_exit_accuracy"] for r in pts], "k:", label="last exit alone")
    ax.set(xlabel="accuracy of each exit", ylabel="accuracy after all exits", title="Fig. 5.7: classifier quality")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bayes_vs_quality.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- T-Tamer if-stop study (app. D.3)

def truncated_pmf(name: str, grid: np.ndarray) -> np.ndarray:
    """PMF on the grid's bins (grid = bin centres on [0, 1]) of one of the D.3 laws."""
    edges = np.linspace(0.0, 1.0, len(grid) + 1)
    if name == "truncnormal(0.5,0.5)":
        cdf = stats.norm(0.5, 0.5).cdf(edges)
    elif name == "trunclognormal(0,1)":
        cdf = stats.lognorm(s=1.0, scale=1.0).cdf(edges)
    elif name == "uniform(0,0.5)":
        cdf = np.clip(edges / 0.5, 0.0, 1.0)
    else:
        raise DPVError(f"unknown loss law {name!r}")
    p = np.diff(cdf)
    return p / p.sum()


def markov_chain(grid: np.ndarray, num_ramps: int, cost: float, law: str, rho: float) -> LossChain:
    """rho = 0: independent losses, the paper's D.3 setting; rho > 0: each ramp's loss stays near
    the previous one (a positively correlated chain, as real ramps are)."""
    p = truncated_pmf(law, grid)
    near = np.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2 * 0.1 ** 2))
    sticky = near * p[None, :]
    sticky /= sticky.sum(axis=1, keepdims=True)
    t = (1 - rho) * p[None, :] + rho * sticky
    trans = np.broadcast_to(t, (num_ramps - 1,) + t.shape).copy()
    return LossChain(grid, p, trans, np.full(num_ramps, cost))


def simulate(chain: LossChain, stop: np.ndarray, rng: np.random.Generator, n: int) -> float:
    """Monte Carlo loss of the recall DP policy on sampled loss paths (checks the DP's expectation)."""
    v = chain.values
    r = rng.choice(len(v), size=n, p=chain.p0)
    x = r.copy()
    total = np.full(n, chain.costs[0])
    active = np.ones(n, dtype=bool)
    for k in range(chain.num_exits):
        halt = active & (stop[k][x, r] if k < chain.num_exits - 1 else True)
        total[halt] += v[x[halt]]
        active &= ~halt
        if not active.any():
            break
        cdf = np.cumsum(chain.trans[k][r], axis=1)
        nxt = (cdf < rng.random((n, 1)) * cdf[:, -1:]).sum(axis=1)
        total[active] += chain.costs[k + 1]
        r = np.where(active, nxt, r)
        x = np.where(active, np.minimum(x, r), x)
    return float(total.mean())


TTAMER_LAWS = ("truncnormal(0.5,0.5)", "trunclognormal(0,1)", "uniform(0,0.5)")


def run_ttamer_study(out: Path, num_ramps: int = 4, grid_size: int = 20, cost: float = 0.1,
                     seed: int = 0, mc_samples: int = 20000) -> list[dict]:
    grid = (np.arange(grid_size) + 0.5) / grid_size
    rows, matrices = [], {}
    for i, law in enumerate(TTAMER_LAWS):
        for rho in (0.0, 0.8):
            chain = markov_chain(grid, num_ramps, cost, law, rho)
            sol = solve_recall(chain)
            best_t = min(grid, key=lambda t: threshold_loss(chain, t))
            rows.append(dict(
                law=law, correlation=rho, recall_dp=sol.expected_loss,
                recall_dp_monte_carlo=simulate(chain, sol.stop, np.random.default_rng([seed, i, int(rho * 10)]), mc_samples),
                no_recall_optimal=solve_no_recall(chain),
                no_recall_threshold=threshold_loss(chain, best_t), threshold=float(best_t),
                recall_threshold=min(threshold_loss(chain, t, recall=True) for t in grid),
                offline_optimum=offline_optimum(chain)))
            matrices[(law, rho)] = sol.stop
    for r in rows:
        r["recall_never_worse"] = bool(r["recall_dp"] <= r["no_recall_threshold"] + 1e-12)
    write_table(out / "ttamer_study", rows)
    plot_if_stop(out, grid, matrices, num_ramps)
    return rows


def offline_optimum(chain: LossChain) -> float:
    """Monte Carlo estimate of the prophet's E[min_i (loss_i + costs to reach i)] (Def. 3.2):
    a lower bound no online policy reaches, shown for scale."""
    v, n = chain.values, len(chain.values)
    rng = np.random.default_rng(0)
    m = 20000
    r = rng.choice(n, size=m, p=chain.p0)
    paid = np.full(m, chain.costs[0])
    best = v[r] + paid
    for k in range(chain.num_exits - 1):
        cdf = np.cumsum(chain.trans[k][r], axis=1)
        r = (cdf < rng.random((m, 1)) * cdf[:, -1:]).sum(axis=1)
        paid = paid + chain.costs[k + 1]
        best = np.minimum(best, v[r] + paid)
    return float(best.mean())


def plot_if_stop(out: Path, grid: np.ndarray, matrices: dict, num_ramps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(matrices)
    fig, axes = plt.subplots(len(keys), num_ramps - 1, figsize=(3 * (num_ramps - 1), 2.8 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        for k in range(num_ramps - 1):
            ax = axes[row][k]
            ax.imshow(matrices[key][k], origin="lower", cmap="Greys", vmin=0, vmax=1,
                      extent=(0, 1, 0, 1), aspect="auto")
            ax.set(xlabel="loss of this ramp r", ylabel="least loss so far x")
            ax.set_title(f"{key[0]}, rho={key[1]}\nramp {k + 1}: stop (black)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ttamer_if_stop.png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- EERO's budget on held-out data

def eero_budget_sweep(seeds: int = 6, points: int = 8, n: int = 1500, delta: float = 0.05) -> list[dict]:
    """EERO fitted on a validation trace, served a test trace of the same model, per seed and
    budget (from exit 0's FLOPs to the last exit's), with its CDFs from the test batch itself
    ("test") or from validation ("val"). `bound` is `EERO.budget_bound` for that calibration."""
    rows = []
    for seed in range(seeds):
        model = f"synthetic-eero-{seed}"
        val = synthetic_trace(2 * seed, n, model_id=model, split="val")
        test = synthetic_trace(2 * seed + 1, n, model_id=model, split="test")
        for b in np.linspace(val.flops[0], val.flops[-1], points):
            for calib in ("test", "val"):
                pol = EERO.fit(val, float(b), test.logits if calib == "test" else None)
                spent = evaluate_policy(pol, test).avg_flops
                bound = pol.budget_bound(val.flops, n, None if calib == "test" else test.size, delta)
                rows.append(dict(seed=seed, budget=float(b), calibration=calib, planned=pol.planned_flops(val.flops),
                                 test_avg_flops=spent, overrun=max(0.0, spent - float(b)),
                                 relative_overrun=max(0.0, spent / float(b) - 1.0), bound=bound,
                                 within_bound=bool(spent <= bound)))
    return rows


# ---------------------------------------------------------------- output

def write_table(stem: Path, rows: list[dict]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0])
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda x: f"{x:.4f}" if isinstance(x, float) else str(x)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))


@cli_main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eexit_vision.studies", description=__doc__.split("\n\n")[0])
    ap.add_argument("study", choices=("bayes", "ttamer", "eero-budget"))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=2000, help="bayes: simulated test samples per setting")
    args = ap.parse_args(argv)
    if args.trials < 1:
        raise DPVError(f"--trials must be >= 1, got {args.trials}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.study == "bayes":
        rows = run_bayes_study(args.out, trials=args.trials, seed=args.seed)
        print(f"bayes study: {len(rows)} rows -> {args.out}/bayes_study.md and bayes_fig*.png")
    elif args.study == "eero-budget":
        rows = eero_budget_sweep()
        write_table(args.out / "eero_budget", rows)
        for calib in ("test", "val"):
            sel = [r for r in rows if r["calibration"] == calib]
            over = [r for r in sel if r["overrun"] > 0]
            print(f"EERO calibrated on {calib}: {len(over)} of {len(sel)} points over budget, max relative "
                  f"overrun {max(r['relative_overrun'] for r in sel):.6f}, all within the stated bound: "
                  f"{all(r['within_bound'] for r in sel)}")
            for r in over:
                print(f"  seed {r['seed']} budget {r['budget']:.0f}: spent {r['test_avg_flops']:.0f} "
                      f"(+{r['relative_overrun']:.4%}), bound {r['bound']:.0f}")
        print(f"-> {args.out}/eero_budget.md")
    else:
        rows = run_ttamer_study(args.out, seed=args.seed)
        for r in rows:
            print(f"{r['law']:>22} rho={r['correlation']}: recall DP {r['recall_dp']:.4f} "
                  f"(MC {r['recall_dp_monte_carlo']:.4f}), no-recall threshold {r['no_recall_threshold']:.4f}, "
                  f"never worse: {r['recall_never_worse']}")
        print(f"-> {args.out}/ttamer_study.md and ttamer_if_stop.png")


if __name__ == "__main__":
    main()
