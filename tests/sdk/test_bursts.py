from datetime import UTC, datetime, timedelta

import pytest

from casebook.sdk.bursts import burst, concentration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_few_accounts_carrying_most_requests():
    result = concentration({"a": 800, "b": 100, "c": 50, "d": 50}, top=2)
    assert [k.key for k in result.top] == ["a", "b"]
    assert result.top_share == 0.9 and result.keys == 4 and result.total == 1000
    assert result.hhi == pytest.approx(0.655) and result.effective_keys == pytest.approx(
        1.527, 1e-3
    )
    assert 0.5 < result.gini < 1 and 0.5 < result.score < 1


def test_an_even_spread_scores_zero_and_a_baseline_sets_the_bar():
    even = concentration([("a", 10), ("b", 10), ("c", 10), ("d", 10)])
    assert even.gini == 0.0 and even.score == 0.0 and even.hhi == 0.25
    usual = {"a": 700, "b": 300}
    same = concentration({"a": 70, "b": 30}, baseline=usual)
    assert same.score == 0.0 and same.top[0].baseline_count == 700.0


def test_concentration_needs_counts():
    with pytest.raises(ValueError, match="counts are empty or all zero; nothing to measure"):
        concentration({})


def test_a_signup_burst_stands_out_from_the_steady_rate():
    steady = [T0 + timedelta(minutes=3 * i) for i in range(100)]
    wave = [T0 + timedelta(hours=2, seconds=5 * i) for i in range(40)]
    ids = [f"user-{i}" for i in range(140)]
    found = burst(steady + wave, window=timedelta(minutes=5), keys=ids)
    assert found is not None
    assert found.count == 42 and found.start == T0 + timedelta(hours=2)  # and 2 steady ones
    assert found.p_value < 1e-20 and found.score == 1.0 and found.ratio > 20
    assert {"user-40", "user-41", "user-100", "user-139"} <= set(found.keys)


def test_a_steady_stream_has_no_unusual_burst():
    steady = [T0 + timedelta(minutes=i) for i in range(300)]
    found = burst(steady, window=timedelta(minutes=5))
    assert found is not None and found.count == 5 and found.p_value == 1.0 and found.score == 0.0
    assert burst([], window=60) is None


def test_burst_arguments_are_checked():
    with pytest.raises(ValueError, match="2 times but 1 keys; give one key per time"):
        burst([T0, T0], keys=["a"])
    with pytest.raises(ValueError, match="window must be positive, got 0"):
        burst([T0], window=0)
