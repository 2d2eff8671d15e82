from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from casebook.sdk.detect import anomaly_scores, compare, detect_onset, mann_whitney
from casebook.sdk.series import Series

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def minute_series(values, start=T0):
    return Series.from_points([(start + timedelta(minutes=i), v) for i, v in enumerate(values)])


def test_a_step_is_found_at_its_first_shifted_minute():
    rng = np.random.default_rng(1)
    values = rng.normal(100, 5, 120)
    values[90:] += 30
    series = minute_series(values)
    onset = detect_onset(
        series.between(start=T0 + timedelta(minutes=60)),
        baseline=series.between(end=T0 + timedelta(minutes=60)),
    )
    assert onset is not None
    assert onset.at == T0 + timedelta(minutes=90)
    assert onset.direction == "up" and onset.ended is None and onset.points == 30
    assert 1.25 < onset.ratio < 1.35 and onset.z > 4 and 0.5 < onset.score < 1


def test_a_drop_is_found_and_a_short_episode_ends():
    values = [50.0 + (i % 3) for i in range(60)]
    values[40:44] = [5.0, 4.0, 6.0, 5.0]
    onset = detect_onset(minute_series(values))
    assert onset is not None and onset.direction == "down"
    assert onset.at == T0 + timedelta(minutes=40)
    assert onset.ended == T0 + timedelta(minutes=44) and onset.points == 4


def test_noise_alone_rarely_fires():
    rng = np.random.default_rng(42)
    fired = 0
    for _ in range(200):
        values = np.concatenate([rng.normal(100, 5, 60), 100 + 5 * rng.standard_t(3, 60)])
        series = minute_series(values)
        fired += (
            detect_onset(
                series.between(start=T0 + timedelta(minutes=60)),
                baseline=series.between(end=T0 + timedelta(minutes=60)),
            )
            is not None
        )
        fired += detect_onset(minute_series(rng.poisson(3, 90).astype(float))) is not None
    assert fired <= 6  # of 400 noise-only windows


def test_a_huge_short_spike_is_not_stretched_over_what_follows():
    values = [0.4] * 60 + [0.5, 95.0, 90.0, 97.0, 80.0, 0.7, 0.6, 0.7, 0.6, 0.5]
    values[30] = 2.0
    onset = detect_onset(
        minute_series(values[60:], T0 + timedelta(minutes=60)), baseline=minute_series(values[:60])
    )
    assert onset is not None
    assert (onset.at, onset.points) == (T0 + timedelta(minutes=61), 4)


def test_seasonality_compares_with_the_same_time_on_previous_days():
    step = timedelta(minutes=30)

    def daily(i):
        return 100 + 50 * np.sin(2 * np.pi * i / 48)

    history = Series.from_points([(T0 + i * step, daily(i)) for i in range(48 * 3)])
    # on day four at 06:00, usually the daily peak (150), the value is only 100
    day4 = T0 + timedelta(days=3)
    today = Series.from_points(
        [(day4 + i * step, daily(i) if i < 12 else 100.0) for i in range(16)]
    )
    plain = anomaly_scores(today, history).values
    seasonal = anomaly_scores(today, history, period=timedelta(days=1)).values
    assert abs(plain[12]) < 1.5 and seasonal[12] < -10
    onset = detect_onset(today, history, period=timedelta(days=1))
    assert onset is not None and onset.direction == "down" and onset.at == day4 + 12 * step
    assert detect_onset(today, history) is None


def test_too_short_a_series_has_no_onset():
    assert detect_onset(minute_series([1.0, 2.0, 3.0])) is None


def test_compare_reports_a_clear_increase():
    result = compare([10, 11, 9, 10, 10, 11], [20, 20, 19, 21, 20, 21])
    assert result.direction == "up" and result.significant
    assert result.before == 10.0 and result.after == 20.0 and result.relative_change == 1.0
    assert result.probability == 1.0 and result.p_value < 0.01 and result.effect_size > 5


def test_compare_calls_overlapping_samples_flat():
    rng = np.random.default_rng(5)
    result = compare(rng.normal(0, 1, 50), rng.normal(0, 1, 50))
    assert result.direction == "flat" and not result.significant and result.p_value > 0.01


def test_compare_names_the_empty_sample():
    with pytest.raises(ValueError, match="the after sample is empty; query a period with data"):
        compare([1.0, 2.0], [])


def test_mann_whitney_matches_the_textbook_values():
    u, p = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 25.0 and round(p, 4) == 0.0122
    u, p = mann_whitney([1, 2, 2, 3], [2, 2, 3, 4])  # ties share their average rank
    assert u == 11.5 and p > 0.3
