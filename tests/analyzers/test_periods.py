"""Periods: the history handle reaches back a day before the onset, past the window."""

from datetime import datetime, timedelta, timezone

from casebook.analyzers.periods import naive, onset_of, with_history
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, make_alert


def test_the_history_reaches_a_day_back_and_to_the_end_of_the_window():
    alert = make_alert(starts_at=DEFAULT_START)
    rows = [
        {
            "ts": DEFAULT_START + timedelta(hours=h),
            "service": "api",
            "level": "info",
            "message": f"at {h} h",
        }
        for h in (-30, -20, -2, 0.1, 0.5)
    ]
    telemetry = TinyStore().add("logs", rows).telemetry(default_window(alert))
    count = "select count(*) from logs"
    assert telemetry.sql(count).scalar() == 1  # the window: an hour before, 15 min after
    assert with_history(telemetry, alert).sql(count).scalar() == 3
    assert onset_of(alert) == DEFAULT_START


def test_naive_is_utc_without_the_zone():
    paris = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=1)))
    assert naive(paris) == datetime(2026, 1, 1, 13, 0)
