from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from casebook.sdk.series import Series, align, series_by, to_epoch

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_rows_become_a_sorted_series_with_nan_for_missing():
    rows = [
        {"ts": T0 + timedelta(minutes=2), "value": 3},
        {"ts": T0, "value": None},
        {"ts": T0 + timedelta(minutes=1), "value": 2.5},
    ]
    series = Series.from_rows(rows)
    assert series.times.tolist() == [to_epoch(T0) + s for s in (0, 60, 120)]
    assert np.isnan(series.values[0]) and series.values[1:].tolist() == [2.5, 3.0]
    assert series.step == 60.0 and series.name == "value"


def test_times_in_every_usual_form_agree():
    naive = datetime(2026, 1, 1, 12, 0)
    forms = [T0, naive, np.datetime64("2026-01-01T12:00:00"), "2026-01-01T12:00:00Z", 1767268800]
    assert {to_epoch(f) for f in forms} == {1767268800.0}


def test_missing_columns_are_named_with_the_fix():
    with pytest.raises(
        ValueError,
        match=r"rows need columns 'ts' and 'latency'; their columns "
        r"are time, latency\. Pass time= and value=",
    ):
        Series.from_rows([{"time": T0, "latency": 1.0}], value="latency")


def test_resample_aggregates_per_bin_and_marks_empty_bins():
    points = [(T0 + timedelta(minutes=m), v) for m, v in [(0, 1), (1, 3), (2, 5), (11, 7)]]
    series = Series.from_points(points)
    five = series.resample(timedelta(minutes=5), how="sum")
    assert five.values.tolist() == [9.0, 0.0, 7.0]
    means = series.resample(300, how="mean")
    assert means.values[0] == 3.0 and np.isnan(means.values[1]) and means.values[2] == 7.0
    assert series.resample(300, how="max").values[0] == 5.0
    assert series.resample(300, how="count").values.tolist() == [3.0, 0.0, 1.0]
    with pytest.raises(
        ValueError, match="how must be one of mean, sum, max, min, median, last, count; got 'avg'"
    ):
        series.resample(300, how="avg")  # type: ignore[arg-type]


def test_align_keeps_the_common_span_where_both_have_data():
    a = Series.from_points([(T0 + timedelta(minutes=m), m) for m in range(10)], name="a")
    b = Series.from_points([(T0 + timedelta(minutes=m), 10 * m) for m in range(5, 15)], name="b")
    left, right = align(a, b)
    assert left.values.tolist() == [5, 6, 7, 8, 9]
    assert right.values.tolist() == [50, 60, 70, 80, 90]


def test_series_by_splits_rows_per_entity_and_points_feed_evidence():
    rows = [{"ts": T0 + timedelta(minutes=m), "pod": p, "value": m} for m in range(3) for p in "ab"]
    per_pod = series_by(rows, "pod")
    assert sorted(per_pod) == ["a", "b"]
    assert per_pod["a"].points()[1] == (T0 + timedelta(minutes=1), 1.0)


def test_a_series_needs_one_value_per_time():
    with pytest.raises(ValueError, match="2 times but 1 values; give one value per time"):
        Series(np.array([0.0, 60.0]), np.array([1.0]), "cpu")
