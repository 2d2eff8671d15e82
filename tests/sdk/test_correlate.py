from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from casebook.sdk.correlate import lead_lag
from casebook.sdk.series import Series

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def minute_series(values, name=""):
    return Series.from_points([(T0 + timedelta(minutes=i), v) for i, v in enumerate(values)], name)


def test_a_cause_that_shifts_first_leads():
    rng = np.random.default_rng(3)
    hit_ratio = [(0.95 if i < 50 else 0.40) + rng.normal(0, 0.01) for i in range(90)]
    latency = [(100.0 if i < 54 else 400.0) + rng.normal(0, 10) for i in range(90)]
    result = lead_lag(minute_series(hit_ratio), minute_series(latency), max_lag=10)
    assert (result.leader, result.decided_by) == ("cause", "onsets")
    assert result.lag == timedelta(minutes=4) and result.lag_steps == 4
    assert result.correlation < -0.5  # hit ratio down, latency up
    assert result.cause_onset == T0 + timedelta(minutes=50)


def test_the_symptom_leading_is_reported_as_such():
    rng = np.random.default_rng(4)
    first = [(10.0 if i < 40 else 30.0) + rng.normal(0, 1) for i in range(80)]
    later = [(5.0 if i < 45 else 9.0) + rng.normal(0, 0.3) for i in range(80)]
    result = lead_lag(minute_series(later), minute_series(first), max_lag=timedelta(minutes=10))
    assert result.leader == "symptom" and result.lag == timedelta(minutes=-5)


def test_continuous_co_movement_is_found_by_correlation():
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.normal(0, 1, 300))
    follower = np.roll(walk, 5) + rng.normal(0, 0.3, 300)
    result = lead_lag(minute_series(walk[10:]), minute_series(follower[10:]), max_lag=15)
    assert (result.leader, result.decided_by, result.lag_steps) == ("cause", "correlation", 5)
    assert result.correlation > 0.8


def test_independent_noise_is_unrelated():
    rng = np.random.default_rng(6)
    unrelated = sum(
        lead_lag(
            minute_series(rng.normal(0, 1, 120)), minute_series(rng.normal(0, 1, 120)), max_lag=10
        ).leader
        == "unrelated"
        for _ in range(50)
    )
    assert unrelated >= 45


def test_series_on_different_steps_are_aligned_on_the_coarser():
    fine = minute_series([float(i) for i in range(60)])
    coarse = Series.from_points([(T0 + timedelta(minutes=5 * i), float(i)) for i in range(12)])
    result = lead_lag(fine, coarse, max_lag=2)
    assert result.step == timedelta(minutes=5) and result.points == 12


def test_too_few_aligned_points_say_how_to_fix_it():
    short = minute_series([1.0, 2.0, 3.0], name="cache")
    with pytest.raises(
        ValueError,
        match="only 3 aligned points between cache and latency; "
        "widen the window or pass a coarser step=",
    ):
        lead_lag(short, minute_series([1.0, 2.0, 3.0], name="latency"))
