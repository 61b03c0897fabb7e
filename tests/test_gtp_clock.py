"""The game clock: GTP/KGS time systems, the engine's own accounting, a move's share."""
import pytest

from dpv.play.gtp_clock import MARGIN, SAFETY, ClockError, GameClock, TimeSystem


def test_gtp_time_settings_map_to_the_spec_systems():
    assert TimeSystem.from_gtp(0, 1, 1) == TimeSystem("canadian", 0.0, 1.0, 1)
    assert TimeSystem.from_gtp(300, 0, 0) == TimeSystem("absolute", 300.0)
    assert TimeSystem.from_gtp(300, 30, 0).kind == "none"  # byo-yomi without stones: no limit
    with pytest.raises(ClockError):
        TimeSystem.from_gtp(-1, 0, 0)


@pytest.mark.parametrize("args, expected", [
    (["none"], TimeSystem("none")),
    (["absolute", "60"], TimeSystem("absolute", 60.0)),
    (["byoyomi", "60", "10", "3"], TimeSystem("byoyomi", 60.0, 10.0, periods=3)),
    (["canadian", "60", "30", "5"], TimeSystem("canadian", 60.0, 30.0, stones=5)),
])
def test_kgs_time_settings(args, expected):
    assert TimeSystem.from_kgs(args) == expected


@pytest.mark.parametrize("args", [[], ["fischer", "1"], ["absolute"], ["byoyomi", "1", "x", "3"]])
def test_bad_kgs_time_settings_name_the_problem(args):
    with pytest.raises(ClockError):
        TimeSystem.from_kgs(args)


def test_no_clock_means_no_share():
    assert GameClock().share(0, 0, 81) is None


def test_canadian_one_second_per_move_share_fits_the_period():
    clock = GameClock(TimeSystem.from_gtp(0, 1, 1))
    share = clock.share(0, 10, 81)
    assert share == pytest.approx(1.0 * SAFETY - MARGIN) and share < 1.0
    clock.spend(0, share)
    assert not clock.sides[0].lost and clock.sides[0].period_left == 1.0  # a new period


def test_absolute_time_is_shared_over_the_moves_left_and_runs_down():
    clock = GameClock(TimeSystem("absolute", 100.0))
    first = clock.share(0, 0, 81)
    assert 0 < first < 100.0 / 10
    clock.spend(0, 40.0)
    assert clock.sides[0].main == 60.0 and clock.share(0, 0, 81) < first
    clock.spend(0, 70.0)
    assert clock.sides[0].lost


def test_byoyomi_periods_are_kept_by_moves_in_time_and_used_by_overruns():
    clock = GameClock(TimeSystem("byoyomi", 0.0, 10.0, periods=3))
    clock.spend(1, 9.0)
    assert clock.sides[1].periods_left == 3
    clock.spend(1, 15.0)  # overran one period
    assert clock.sides[1].periods_left == 2 and not clock.sides[1].lost
    assert clock.share(1, 50, 81) == pytest.approx(10.0 * SAFETY - MARGIN)


def test_time_left_corrects_the_engines_own_accounting():
    clock = GameClock(TimeSystem("canadian", 60.0, 30.0, stones=5))
    clock.time_left(0, 12, 2)  # in byo-yomi: 12 s for 2 stones
    side = clock.sides[0]
    assert (side.main, side.period_left, side.stones_left) == (0.0, 12.0, 2)
    assert clock.share(0, 100, 81) == pytest.approx(6.0 * SAFETY - MARGIN)
    clock.time_left(0, 50, 0)  # back to main time
    assert clock.sides[0].main == 50.0


# ---------------------------------------------------------------- a network player under a clock
import numpy as np  # noqa: E402

from dpv.config import GameConfig  # noqa: E402
from dpv.play.experiments import untrained_checkpoint  # noqa: E402
from dpv.play.gtp import GTPEngine  # noqa: E402
from dpv.play.gtp_search import Latency  # noqa: E402
from dpv.players.spec import make_player  # noqa: E402

GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=324)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the engine's CLI does: the machine is shared
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return untrained_checkpoint("configs/go9.yaml", tmp_path_factory.mktemp("ck") / "go9.pt")


def _engine(ckpt, opts):
    return GTPEngine(lambda c: make_player(f"net:{ckpt},{opts}", c), GO9)


def test_a_share_becomes_simulations_in_fixed_mode_and_flops_in_budgeted_modes(ckpt):
    fixed = _engine(ckpt, "mode=fixed,sims=64").search
    flops = np.asarray(fixed.player.evaluator.fixed_flops, dtype=float)
    lat = Latency(np.array([0.001, 0.002, 0.004]), flops)
    fixed.latency = lat
    assert fixed.limit_for(0.4).simulations == 100  # 0.4 s at 4 ms per deepest-exit evaluation
    dynamic = _engine(ckpt, "mode=dynamic,n_ref=64").search
    dynamic.latency = lat
    limit = dynamic.limit_for(0.4)
    slowest_per_flop = max(0.001 / flops[0], 0.002 / flops[1], 0.004 / flops[2])
    assert limit.budget_flops == pytest.approx(0.4 / slowest_per_flop)
    assert limit.simulations is None


def test_time_settings_measure_latency_and_genmove_spends_its_own_clock(ckpt):
    e = _engine(ckpt, "mode=dynamic,n_ref=64,tau0=0.3")
    assert e.handle("time_settings 0 1 1") == "=\n\n"
    assert e.search.latency is not None and (e.search.latency.seconds > 0).all()
    move = e.handle("genmove b")
    assert move.startswith("= ") and len(e.state.history()) == 1
    info = e.player.last_move
    assert info.budget_flops is not None and info.flops <= info.budget_flops
    assert e.clock.sides[0].stones_left == 1  # the move was charged: a new period began
    assert e.handle("kgs-time_settings none") == "=\n\n" and not e.clock.limited
