"""Errors: an error class that was already flowing long before the alert counts for less."""

from datetime import timedelta

import pytest

from casebook.analyzers.errors import error_log_spike, error_origin
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert, run


def failing(since_minutes: int) -> TinyStore:
    """30 error lines (and failing spans) on `api`, the first `since_minutes` before the alert."""
    start = DEFAULT_START - timedelta(minutes=since_minutes)
    logs, spans = [], []
    for i in range(30):
        ts = start + timedelta(seconds=20 * i)
        logs.append(
            {
                "ts": ts,
                "service": "api",
                "level": "error",
                "message": f"TimeoutError: upstream took {i} ms",
            }
        )
        spans.append(
            {
                "trace_id": f"t{i}",
                "span_id": "s",
                "parent_span_id": "",
                "service": "api",
                "name": "GET /x",
                "start_ts": ts,
                "duration_ms": 5.0,
                "status": "error",
            }
        )
    return TinyStore().add("logs", logs).add("spans", spans)


@pytest.mark.parametrize(("since", "confidence"), [(2, 0.6), (40, 0.35)])
def test_confidence_depends_on_how_long_before_the_alert_the_errors_began(since, confidence):
    alert = make_alert("Errors", service="api", starts_at=DEFAULT_START)
    spike = run(error_log_spike, alert=alert, store=failing(since)).finding
    origin = run(error_origin, alert=alert, store=failing(since)).finding
    assert spike.service == origin.service == "api"
    assert spike.confidence == origin.confidence == confidence
