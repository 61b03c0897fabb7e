import itertools

import numpy as np
import pytest

from eexit_vision.policies.offline import evaluate_policy
from eexit_vision.policies.ttamer import (LossChain, TTamer, solve_no_recall, solve_recall, solve_skip,
                                          threshold_loss)
from eexit_vision.studies import markov_chain, run_ttamer_study, synthetic_trace


def random_chain(rng, num_exits=3, num_values=3):
    values = np.sort(rng.uniform(0.05, 1.0, num_values))
    p0 = rng.dirichlet(np.ones(num_values))
    trans = rng.dirichlet(np.ones(num_values), size=(num_exits - 1, num_values))
    costs = rng.uniform(0.0, 0.3, num_exits)
    return LossChain(values, p0, trans, costs)


def paths(chain):
    """Every loss path (grid indices) with its probability."""
    n = len(chain.values)
    for path in itertools.product(range(n), repeat=chain.num_exits):
        p = chain.p0[path[0]]
        for k in range(1, chain.num_exits):
            p *= chain.trans[k - 1][path[k - 1], path[k]]
        yield path, p


def brute_force_line(chain, recall=True):
    """Minimum expected loss over ALL deterministic stopping rules, each a function of the
    whole observed history (not only of the DP's state)."""
    n, k_n = len(chain.values), chain.num_exits
    histories = [h for k in range(1, k_n) for h in itertools.product(range(n), repeat=k)]
    all_paths = list(paths(chain))
    best = np.inf
    for bits in itertools.product((False, True), repeat=len(histories)):
        rule = dict(zip(histories, bits))
        total = 0.0
        for path, p in all_paths:
            k = 0
            while k < k_n - 1 and not rule[path[: k + 1]]:
                k += 1
            loss = min(chain.values[list(path[: k + 1])]) if recall else chain.values[path[k]]
            total += p * (loss + chain.costs[: k + 1].sum())
        best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_recall_dp_equals_brute_force_over_all_stopping_rules(seed):
    chain = random_chain(np.random.default_rng(seed))
    assert solve_recall(chain).expected_loss == pytest.approx(brute_force_line(chain, recall=True), abs=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_no_recall_dp_equals_brute_force(seed):
    chain = random_chain(np.random.default_rng(100 + seed))
    assert solve_no_recall(chain) == pytest.approx(brute_force_line(chain, recall=False), abs=1e-12)


def brute_force_skip(values, p0, trans, edge):
    """All rules of the transitive closure: after each history, stop or jump to any later exit."""
    n, k_n = len(values), edge.shape[0]

    def hop(i, j):
        m = np.eye(n)
        for k in range(i, j):
            m = m @ trans[k]
        return m

    def value_of_state(history, paid):
        """Best expected loss from a full history of (exit, grid index) observations: an
        exhaustive search over every continuation, with no DP state compression."""
        i, last = history[-1]
        best = min(values[b] for _, b in history) + paid
        for j in range(i + 1, k_n):
            h = hop(i, j)[last]
            best = min(best, sum(h[b] * value_of_state(history + ((j, b),), paid + edge[i, j]) for b in range(n)))
        return best

    return sum(p0[a] * value_of_state(((0, a),), edge[0, 0]) for a in range(n))


@pytest.mark.parametrize("seed", range(3))
def test_skip_dp_equals_exhaustive_search(seed):
    rng = np.random.default_rng(200 + seed)
    chain = random_chain(rng, num_exits=4, num_values=3)
    edge = np.triu(rng.uniform(0.01, 0.3, (4, 4)), 1)
    edge[0, 0] = 0.05
    sol = solve_skip(chain.values, chain.p0, chain.trans, edge)
    assert sol.expected_loss == pytest.approx(brute_force_skip(chain.values, chain.p0, chain.trans, edge), abs=1e-12)
    # with skips forbidden (infinite cost) it is the line DP again
    line_edge = np.full((4, 4), np.inf)
    for i in range(3):
        line_edge[i, i + 1] = chain.costs[i + 1]
    line_edge[0, 0] = chain.costs[0]
    assert solve_skip(chain.values, chain.p0, chain.trans, line_edge).expected_loss == \
        pytest.approx(solve_recall(chain).expected_loss, abs=1e-12)


def test_recall_never_worse_than_thresholds_on_the_d3_chains():
    grid = (np.arange(12) + 0.5) / 12
    for law in ("truncnormal(0.5,0.5)", "trunclognormal(0,1)", "uniform(0,0.5)"):
        for rho in (0.0, 0.8):
            chain = markov_chain(grid, 4, 0.1, law, rho)
            best = solve_recall(chain).expected_loss
            assert all(best <= threshold_loss(chain, t) + 1e-12 for t in grid)
            assert all(best <= threshold_loss(chain, t, recall=True) + 1e-12 for t in grid)


def test_threshold_loss_matches_enumeration():
    chain = random_chain(np.random.default_rng(7))
    t = chain.values[1]
    total = 0.0
    for path, p in paths(chain):
        k = next((k for k in range(chain.num_exits) if chain.values[path[k]] <= t), chain.num_exits - 1)
        total += p * (chain.values[path[k]] + chain.costs[: k + 1].sum())
    assert threshold_loss(chain, t) == pytest.approx(total)


def test_ttamer_policy_recalls_least_loss_exit_and_lambda_trades_flops():
    val, test = synthetic_trace(seed=0, n=800), synthetic_trace(seed=1, n=800)
    cheap, accurate = TTamer.fit(val, lam=0.6), TTamer.fit(val, lam=0.02)
    r_cheap, r_acc = evaluate_policy(cheap, test), evaluate_policy(accurate, test)
    assert r_cheap.avg_flops < r_acc.avg_flops
    assert r_acc.accuracy > r_cheap.accuracy
    from dpv.exits import run_offline
    dec = run_offline(accurate, test.logits)
    assert (dec.answer_exit <= dec.exit_index).all()


def test_ttamer_study_writes_tables_and_recall_never_worse(tmp_path):
    rows = run_ttamer_study(tmp_path, mc_samples=4000)
    assert all(r["recall_never_worse"] for r in rows)
    for r in rows:  # the DP's expectation agrees with simulating its policy
        assert r["recall_dp_monte_carlo"] == pytest.approx(r["recall_dp"], abs=0.02)
    assert (tmp_path / "ttamer_if_stop.png").stat().st_size > 0
    assert (tmp_path / "ttamer_study.md").read_text().count("\n") == len(rows) + 2


# ---- exact small cases (written against the mutants that survived the tests above)

def test_threshold_loss_with_recall_matches_enumeration():
    chain = random_chain(np.random.default_rng(8))
    t = chain.values[0]  # rows that never reach the lowest loss run to the last exit and recall
    total = 0.0
    for path, p in paths(chain):
        k = next((k for k in range(chain.num_exits) if chain.values[path[k]] <= t), chain.num_exits - 1)
        total += p * (chain.values[list(path[: k + 1])].min() + chain.costs[: k + 1].sum())
    assert threshold_loss(chain, t, recall=True) == pytest.approx(total)
    assert threshold_loss(chain, t) != pytest.approx(total)  # recall is not the default


def test_skip_solution_tables_stop_at_the_last_exit_and_mark_stops_with_minus_one():
    rng = np.random.default_rng(3)
    chain = random_chain(rng, num_exits=4, num_values=3)
    edge = np.triu(rng.uniform(0.0, 0.2, (4, 4)))
    sol = solve_skip(chain.values, chain.p0, chain.trans, edge)
    np.testing.assert_array_equal(sol.phi[-1], np.broadcast_to(chain.values[:, None], (3, 3)))
    assert (sol.action[-1] == -1).all()
    stops = sol.action == -1
    np.testing.assert_allclose(sol.phi[stops], np.broadcast_to(chain.values[:, None], sol.phi.shape)[stops])
    assert (sol.phi[~stops] < np.broadcast_to(chain.values[:, None], sol.phi.shape)[~stops]).all()
    assert set(np.unique(sol.action)) <= {-1, 1, 2, 3}


def test_exit_losses_and_stage_costs_are_the_app_d2_quantities():
    from eexit_vision.policies.ttamer import exit_losses, stage_costs
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    np.testing.assert_allclose(exit_losses(logits), [0.3, 0.4])
    mask = np.array([[False, True, True], [True, True, True]])  # legal moves only: 0.2/0.3 -> 2/3
    np.testing.assert_allclose(exit_losses(logits, mask), [1 - 2 / 3, 0.4])
    np.testing.assert_allclose(stage_costs([2.0, 5.0, 10.0]), [0.2, 0.3, 0.5])


def test_fit_chain_on_a_hand_computed_trace():
    from eexit_vision.policies.ttamer import fit_chain
    losses = np.array([[0.1, 0.2, 0.3, 0.7], [0.15, 0.65, 0.6, 0.8]])
    chain, edges = fit_chain(losses, np.array([2.0, 10.0]), lam=0.2, num_bins=2, smoothing=0.5)
    np.testing.assert_allclose(edges, [0.45])  # the pooled median
    np.testing.assert_allclose(chain.values, 0.8 * np.array([0.1875, 0.6875]))  # (1 - lam) x bin means
    np.testing.assert_allclose(chain.p0, [0.7, 0.3])  # ([3, 1] + 0.5) / (4 + 2 x 0.5)
    np.testing.assert_allclose(chain.trans[0], [[0.375, 0.625], [0.25, 0.75]])
    np.testing.assert_allclose(chain.costs, 0.2 * np.array([0.2, 0.8]))
    # four bins: edges at the pooled quartiles
    _, e4 = fit_chain(losses, np.array([2.0, 10.0]), 0.2, 4, 0.5)
    np.testing.assert_allclose(e4, np.quantile(losses.ravel(), [0.25, 0.5, 0.75]))
    # an empty bin takes its midpoint as its value: [0, 0, 0, 1, 1, 1] puts edges at 0 and 1
    c3, e3 = fit_chain(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), np.array([1.0, 2.0]), 0.0, 3, 0.1)
    np.testing.assert_allclose(e3, [0.0, 1.0])
    np.testing.assert_allclose(c3.values, [0.0, 0.0, 1.0])
    # an empty bin between two distinct edges: midpoint 0.1 of [0, 0.2)
    c3b, _ = fit_chain(np.array([[0.2, 0.2, 0.2], [0.5, 0.5, 0.5]]), np.array([1.0, 2.0]), 0.0, 3, 0.1)
    np.testing.assert_allclose(c3b.values, [0.1, 0.2, 0.5])
    # one sample per bin: its own loss
    c4, _ = fit_chain(np.array([[0.1, 0.4], [0.6, 0.9]]), np.array([1.0, 2.0]), 0.0, 4, 0.1)
    np.testing.assert_allclose(c4.values, [0.1, 0.4, 0.6, 0.9])
    # three exits: one transition matrix between each pair of consecutive exits
    l3 = np.array([[0.1, 0.1, 0.9, 0.9], [0.1, 0.9, 0.1, 0.9], [0.9, 0.9, 0.9, 0.1]])
    c5, _ = fit_chain(l3, np.array([1.0, 2.0, 3.0]), 0.0, 2, 1.0)
    assert c5.trans.shape == (2, 2, 2)
    np.testing.assert_allclose(c5.trans[0], [[2 / 4, 2 / 4], [2 / 4, 2 / 4]])  # exit 0 -> 1: (0,0) (0,1) (1,0) (1,1)
    np.testing.assert_allclose(c5.trans[1], [[1 / 4, 3 / 4], [2 / 4, 2 / 4]])  # exit 1 -> 2: (0,1) (1,1) (0,1) (1,0)
    one, _ = fit_chain(np.array([[0.2], [0.1]]), np.array([1.0, 2.0]), 0.5, 4, 0.1)  # one sample is enough
    assert one.num_exits == 2


def test_ttamer_fit_checks_lambda_and_keeps_it():
    from dpv.errors import DPVError
    val = synthetic_trace(seed=0, n=300)
    pol = TTamer.fit(val, 0.3)
    assert pol.lam == 0.3 and len(pol.edges) == 15  # 16 bins by default
    for bad in (-0.1, 1.5):
        with pytest.raises(DPVError, match=f"T-Tamer: lambda must be in \\[0, 1\\], got {bad}"):
            TTamer.fit(val, bad)
    from eexit_vision.policies.ttamer import fit_chain
    with pytest.raises(DPVError, match="^T-Tamer: the validation trace is empty$"):
        fit_chain(np.zeros((2, 0)), np.array([1.0, 2.0]), 0.1, 4, 0.1)


def test_ttamer_select_recalls_the_most_confident_exit_ties_to_the_deeper():
    from dpv.exits import ExitContext
    pol = TTamer(np.array([0.25, 0.5]), np.ones((3, 3, 3), dtype=bool), 0.0)

    def ctx(exits, mask=None):  # exits: per exit, the probability rows
        return ExitContext(len(exits) - 1, 3, [np.log(np.asarray(e)) for e in exits], mask)

    sure, unsure = [0.9, 0.1], [0.55, 0.45]  # losses 0.1 (bin 0) and 0.45 (bin 1)
    # rows: best at exit 0; tie between exits 0 and 2 (same bin); best at exit 1
    exits = [[sure, sure, unsure], [unsure, unsure, sure], [unsure, sure, unsure]]
    assert pol.select(ctx(exits)).tolist() == [0, 2, 1]
    last = pol.decide(ctx(exits))
    assert last.dtype == bool and last.tolist() == [True, True, True]  # the last exit always stops
    # confidence over legal moves only: with move 0 illegal exit 0 is unsure (0.5), exit 1 sure (0.78)
    two = [[[0.8, 0.1, 0.1]], [[0.1, 0.7, 0.2]]]
    assert pol.select(ctx(two)).tolist() == [0]
    assert pol.select(ctx(two, np.array([[False, True, True]]))).tolist() == [1]


def test_dynamic_index_is_the_largest_least_loss_that_still_stops():
    from eexit_vision.policies.ttamer import DPSolution, dynamic_index
    stop = np.ones((2, 3, 3), dtype=bool)
    stop[0] = [[True, False, True], [True, False, False], [False, False, True]]
    values = np.array([0.1, 0.5, 0.9])
    sigma = dynamic_index(DPSolution(np.zeros((2, 3, 3)), stop, 0.0), values)
    np.testing.assert_array_equal(sigma, [[0.5, -np.inf, 0.9]])
    # on a solved chain the if-stop matrices are thresholds in x: stop <=> x <= sigma(k, r)
    chain = random_chain(np.random.default_rng(5), num_exits=4, num_values=5)
    sol = solve_recall(chain)
    sig = dynamic_index(sol, chain.values)
    for k in range(chain.num_exits - 1):
        np.testing.assert_array_equal(sol.stop[k], chain.values[:, None] <= sig[k][None, :])
