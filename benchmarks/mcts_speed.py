"""DPV-MCTS speed, printed as one table in one run.

1. Tree speed: simulations/s with a zero-cost uniform evaluator on 9x9, this MCTS vs
   OpenSpiel's Python `mcts.MCTSBot` with the same zero-cost evaluator (PUCT, no solver),
   on the same positions with the same simulations per search and c_puct, timed as
   interleaved repeats (median wall time, and the CPU-time ratio next to it). The terms are
   printed under the table. OpenSpiel's bot runs as shipped: it clones the root once per
   simulation, expands a node on its second visit and shuffles children at expansion; our
   search expands on the second pass too (deferred expansion) and keeps no state per leaf.
2. With the CPU-default network (configs/go9.yaml, untrained weights) at batch sizes
   games x leaves = 1x1, 1x8, 4x8, 8x8: positions/s and the share of move time spent outside
   the network (tree + game + batching).
3. Same FLOPs budget (n_ref x FLOPs of the deepest exit): simulations per move achieved by
   each fixed exit and by the dynamic policy.

    python benchmarks/mcts_speed.py [--quick] [--tree-only] [--checkpoint PATH] [--set mcts.root=puct]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pyspiel
import torch
from open_spiel.python.algorithms import mcts as spiel_mcts

from dpv.config import GameConfig, MCTSConfig, NetConfig, load_sections, read_yaml, set_dotted
from dpv.errors import cli_main
from dpv.evaluator import TimedEvaluator
from dpv.games.spiel import make_game
from dpv.mcts import MCTS, UniformEvaluator, make_evaluator, run_searches
from dpv.nets import build_policy_value_net

ROOT = Path(__file__).resolve().parents[1]


class ZeroSpielEvaluator(spiel_mcts.Evaluator):
    """OpenSpiel's side of the comparison: uniform prior, value 0, no cost."""

    def evaluate(self, state):
        return np.zeros(2)

    def prior(self, state):
        legal = state.legal_actions()
        return [(a, 1.0 / len(legal)) for a in legal]


def random_position(game, moves: int, rng: np.random.Generator):
    state = game.new_state()
    for _ in range(moves):
        legal = [a for a in state.legal_actions() if a != game.pass_action]  # no passes
        state.apply(int(rng.choice(legal)))
    return state


FAIRNESS = ("same positions, same simulations per search (counted alike: one evaluator call "
            "or terminal visit each, checked), c_puct = uct_c = 1.5, no noise, OpenSpiel "
            "solve=False with puct_value; both evaluators: uniform prior over legal moves, "
            "value 0; ours: 8 leaves per step, virtual loss 1, tree cleared before each search")


def tree_speed(sims: int, repeats: int) -> list[tuple[str, str, str]]:
    """Zero-cost evaluator: our search vs OpenSpiel's Python MCTSBot, interleaved repeats,
    median wall time per search (and the CPU-time ratio, less disturbed by other load)."""
    cfg_game = GameConfig(name="go", board_size=9)
    game = make_game(cfg_game)
    rows = []
    for label, moves in (("empty board", 0), ("after 30 moves", 30)):
        state = random_position(game, moves, np.random.default_rng(1))
        cfg = MCTSConfig(simulations=sims, leaves_per_call=8, c_puct=1.5, virtual_loss=1.0)
        ours = {planes: MCTS(game, cfg, UniformEvaluator(wants_planes=planes),
                             np.random.default_rng(0)) for planes in (False, True)}
        bot = spiel_mcts.MCTSBot(game.spiel_game, 1.5, sims, ZeroSpielEvaluator(), solve=False,
                                 random_state=np.random.RandomState(0),
                                 child_selection_fn=spiel_mcts.SearchNode.puct_value)
        counted = {}

        def run_ours(planes):
            def run():
                search = ours[planes]
                search.reset()
                counted[planes] = search.search(state, add_noise=False).simulations
            return run

        def run_theirs():
            counted["spiel"] = bot.mcts_search(state.spiel_state).explore_count

        fns = {"ours": run_ours(False), "planes": run_ours(True), "spiel": run_theirs}
        wall, cpu = interleaved_wall_and_cpu(fns, repeats)
        if not counted[False] == counted[True] == counted["spiel"] == sims:
            raise RuntimeError(f"simulations differ: {counted}")
        rate = {k: sims / v for k, v in wall.items()}
        rows.append((f"zero-cost, 9x9 {label}: DPV-MCTS sims/s", f"{rate['ours']:,.0f}",
                     f"{rate['ours'] / rate['spiel']:.1f}x OpenSpiel Python MCTSBot "
                     f"({rate['spiel']:,.0f} sims/s); CPU-time ratio "
                     f"{cpu['spiel'] / cpu['ours']:.1f}x"))
        rows.append(("  same, building observation planes and legal masks", f"{rate['planes']:,.0f}",
                     f"{rate['planes'] / rate['spiel']:.1f}x; CPU-time ratio "
                     f"{cpu['spiel'] / cpu['planes']:.1f}x"))
    return rows


def interleaved_wall_and_cpu(fns, repeats: int, warmup: int = 1):
    """Median wall and process-CPU seconds per call of each fn, timed round-robin (as
    benchmarks.common.interleaved_medians) so load drift on a shared machine hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    med = statistics.median
    return {k: med(v) for k, v in wall.items()}, {k: med(v) for k, v in cpu.items()}


def load_cpu_default(checkpoint: str | None, overrides: list[str] = ()):
    data = read_yaml(ROOT / "configs/go9.yaml")
    for o in overrides:
        set_dotted(data, o)
    sections = load_sections(data, {"game": GameConfig, "net": NetConfig, "mcts": MCTSConfig}, strict=False)
    game_cfg, net_cfg, mcts_cfg = sections["game"], sections["net"], sections["mcts"]
    if checkpoint:
        from dpv.checkpoint import load_policy_value

        net, _ = load_policy_value(checkpoint, expect_game=game_cfg)
    else:
        torch.manual_seed(0)
        net = build_policy_value_net(net_cfg, make_game(game_cfg)).eval()
    return game_cfg, net, mcts_cfg


def batch_speed(net, game_cfg, mcts_cfg, sims: int, moves: int) -> list[tuple[str, str, str]]:
    game = make_game(game_cfg)
    rows = []
    for games, leaves in ((1, 1), (1, 8), (4, 8), (8, 8)):
        cfg = MCTSConfig(**{**mcts_cfg.__dict__, "simulations": sims, "leaves_per_call": leaves,
                            "exit_mode": "fixed", "exit": -1})
        ev = TimedEvaluator(make_evaluator(net, cfg))
        rng = np.random.default_rng(games * 100 + leaves)
        searches = [MCTS(game, cfg, ev, np.random.default_rng(i)) for i in range(games)]
        states = [random_position(game, int(rng.integers(0, 20)), rng) for _ in range(games)]
        run_searches(searches, states, ev, add_noise=True)  # warm-up (allocations, kernels)
        for s in searches:
            s.reset()
        ev.seconds, ev.rows = 0.0, 0
        t0 = time.perf_counter()
        for _ in range(moves):
            results = run_searches(searches, states, ev, add_noise=True)
            for s, st, r in zip(searches, states, results):
                a = int(np.argmax(r.visits))
                s.advance(a)
                st.apply(a)
        wall = time.perf_counter() - t0
        outside = 1.0 - ev.seconds / wall
        rows.append((f"net {games} games x {leaves} leaves (batch {games * leaves})",
                     f"{ev.rows / wall:,.0f} pos/s",
                     f"outside the network {100 * outside:.1f}% of move time"))
    return rows


def _median_first_exit_confidence(net, states) -> float:
    from dpv.exits import masked_softmax

    x = torch.from_numpy(np.stack([s.observation() for s in states]))
    with torch.inference_mode():
        logits = net.forward_to(x, 0).policy_logits.numpy()
    mask = np.stack([s.legal_mask() for s in states])
    return float(np.median(masked_softmax(logits, mask).max(axis=1)))


def budget_modes(net, game_cfg, mcts_cfg, n_ref: int, tau0: float, alpha: float,
                 positions: int) -> list[tuple[str, str, str]]:
    game = make_game(game_cfg)
    rng = np.random.default_rng(7)
    states = [random_position(game, int(rng.integers(0, 30)), rng) for _ in range(positions)]
    k = net.num_exits
    modes = [(f"fixed exit {j} (block {net.exit_blocks[j]})", "fixed_budget", j, tau0)
             for j in range(k)]
    modes += [(f"dynamic static tau0={tau0}", "dynamic_static", -1, tau0),
              (f"dynamic tau0={tau0} alpha={alpha}", "dynamic", -1, tau0)]
    # an untrained net is rarely confident: also use tau0 = median exit-0 confidence here
    cal = round(_median_first_exit_confidence(net, states), 4)
    modes += [(f"dynamic static tau0={cal} (median exit-0 conf.)", "dynamic_static", -1, cal),
              (f"dynamic tau0={cal} alpha={alpha}", "dynamic", -1, cal)]
    rows = []
    for label, mode, exit_k, t0 in modes:
        cfg = MCTSConfig(**{**mcts_cfg.__dict__, "exit_mode": mode, "exit": exit_k,
                            "n_ref": n_ref, "tau0": t0, "alpha": alpha})
        ev = make_evaluator(net, cfg)
        searches = [MCTS(game, cfg, ev, np.random.default_rng(i)) for i in range(positions)]
        results = run_searches(searches, states, ev, add_noise=False)
        sims = np.mean([r.simulations for r in results])
        used = max(r.flops / r.budget_flops for r in results)
        hist = np.sum([r.exit_histogram for r in results], axis=0)
        share = ", ".join(f"{100 * h / hist.sum():.0f}%" for h in hist)
        rows.append((f"n_ref={n_ref}: {label}", f"{sims:.1f} sims/move",
                     f"max budget used {100 * used:.1f}%, exits [{share}]"))
    return rows


@cli_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer simulations and repeats")
    ap.add_argument("--checkpoint", help="policy-value checkpoint for 9x9 (default: untrained go9 net)")
    ap.add_argument("--n-ref", type=int, default=64)
    ap.add_argument("--tau0", type=float, default=0.6)
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tree-only", action="store_true",
                    help="only the zero-cost comparison with OpenSpiel (no network rows)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override configs/go9.yaml for the network rows (e.g. mcts.root=puct)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sims, repeats = (400, 5) if args.quick else (1600, 9)
    rows = tree_speed(sims, repeats)
    if not args.tree_only:
        game_cfg, net, mcts_cfg = load_cpu_default(args.checkpoint, args.set)
        rows += batch_speed(net, game_cfg, mcts_cfg, sims=64, moves=1 if args.quick else 3)
        rows += budget_modes(net, game_cfg, mcts_cfg, args.n_ref, args.tau0, args.alpha,
                             positions=2 if args.quick else 4)
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"DPV-MCTS speed (torch threads={args.threads}, "
          f"net={'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained configs/go9.yaml'}, "
          f"root={mcts_cfg.root if not args.tree_only else 'puct'}{', ' + ' '.join(args.set) if args.set else ''})")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {note}")
    print(f"zero-cost rows ({sims} simulations per search, median of {repeats} interleaved "
          f"runs): {FAIRNESS}")


if __name__ == "__main__":
    main()
