"""Wilson and Elo intervals against values worked out by hand."""
import math

import pytest

from dpv.play.stats import elo_from_score, wilson_interval, win_rate


def test_wilson_interval_matches_hand_computation():
    # 7 wins of 10, z = 1.96:
    # centre = (0.7 + 1.96^2/20) / (1 + 1.96^2/10) = 0.89208 / 1.38416 = 0.644492
    # half   = 1.96 * sqrt(0.7*0.3/10 + 1.96^2/400) / 1.38416 = 1.96 * 0.174940 / 1.38416 = 0.247718
    lo, hi = wilson_interval(7, 10, z=1.96)
    assert lo == pytest.approx(0.396774, abs=1e-5)
    assert hi == pytest.approx(0.892210, abs=1e-5)


def test_wilson_interval_at_the_edges_stays_inside_zero_one():
    # 0 of 10: centre = 0.19208/1.38416 = 0.138770 = half, so the interval is [0, 0.277540]
    lo, hi = wilson_interval(0, 10, z=1.96)
    assert lo == 0.0 and hi == pytest.approx(0.277540, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_elo_from_score_by_hand():
    assert elo_from_score(0.5) == 0.0
    # p = 0.75: -400 log10(1/0.75 - 1) = -400 log10(1/3) = 190.849
    assert elo_from_score(0.75) == pytest.approx(190.849, abs=1e-3)
    assert elo_from_score(0.25) == pytest.approx(-190.849, abs=1e-3)
    assert elo_from_score(1.0) == math.inf and elo_from_score(0.0) == -math.inf


def test_win_rate_counts_draws_half_and_maps_the_interval_to_elo():
    # 6 wins, 2 losses, 2 draws: score 7/10, same Wilson interval as 7 of 10
    wr = win_rate(6, 2, 2, z=1.96)
    assert wr.score == pytest.approx(0.7) and wr.games == 10
    assert (wr.low, wr.high) == pytest.approx((0.396774, 0.892210), abs=1e-5)
    # Elo(0.7) = -400 log10(3/7) = 147.19; ends: Elo(0.396774) = -72.08, Elo(0.892210) = 363.30
    assert wr.elo == pytest.approx(147.19, abs=0.01)
    assert wr.elo_low == pytest.approx(-72.78, abs=0.02)
    assert wr.elo_high == pytest.approx(367.16, abs=0.02)


def test_win_rate_json_writes_unbounded_elo_as_null():
    d = win_rate(10, 0, 0).to_dict()
    assert d["elo"] is None and d["elo95"][1] is None and d["elo95"][0] > 0
    assert "+inf" in win_rate(10, 0, 0).describe()
