"""Capacity: a traffic surge is read from the request rate, whether the counter is cumulative
(with restarts) or counts per interval."""

from datetime import timedelta

from casebook.analyzers.capacity import traffic_surge
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run

ONSET = DEFAULT_START


def requests(cumulative: bool, reset_at: int | None = None) -> TinyStore:
    """api serves 100 requests a minute on two pods, 300 from the onset; samples every minute."""
    rows, totals = [], {"api-1": 5000.0, "api-2": 7000.0}
    for minute in range(-119, 10):
        for pod in totals:
            served = (150.0 if minute >= 0 else 50.0) + (minute % 2)
            totals[pod] += served
            if reset_at is not None and minute == reset_at and pod == "api-1":
                totals[pod] = served  # the pod restarted: its counter began again at zero
            value = totals[pod] if cumulative else served
            rows.append({"ts": ONSET + timedelta(minutes=minute), "name": "http_requests_total",
                         "service": "api", "value": value, "labels": {"pod": pod}})
    return TinyStore().add("metrics", rows)


def surge(store: TinyStore):
    alert = make_alert("HighLatency", service="api", starts_at=ONSET)
    return run(traffic_surge, alert=alert, store=store, params={"service": "api"}).finding


def test_a_cumulative_counter_is_read_as_its_rate():
    finding = surge(requests(cumulative=True))
    assert finding.title == "Traffic to api up 3.0x"
    assert finding.summary.startswith("api went from 101 to 301 requests per minute at 12:00 UTC")


def test_a_counter_restart_is_not_a_drop_or_a_surge():
    assert surge(requests(cumulative=True, reset_at=-20)).title == "Traffic to api up 3.0x"
    flat = requests(cumulative=True, reset_at=-20)
    flat.connection.execute("delete from raw.metrics where ts >= ?", [ONSET.replace(tzinfo=None)])
    assert surge(flat) is None


def test_a_per_interval_counter_gives_the_same_surge():
    assert surge(requests(cumulative=False)).title == "Traffic to api up 3.0x"
