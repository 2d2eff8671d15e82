from datetime import UTC, datetime, timedelta

import pytest

from casebook.sdk.events import isolate_events

ONSET = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def event(minutes_before, kind, service, summary):
    return {
        "ts": ONSET - timedelta(minutes=minutes_before),
        "kind": kind,
        "service": service,
        "summary": summary,
    }


def test_recent_changes_to_the_service_rank_first_and_later_ones_are_left_out():
    events = [
        event(50, "deploy", "checkout", "old deploy"),
        event(3, "deploy", "checkout", "v2.3.1"),
        event(2, "config", "payments", "timeout 2s"),
        event(1, "flag", "global", "new_pricing"),
        event(1, "deploy", "search", "unrelated service"),
        event(-5, "deploy", "checkout", "rollback after the onset"),
        event(90, "deploy", "checkout", "outside the window"),
    ]
    ranked = isolate_events(
        events, ONSET, timedelta(hours=1), service="checkout", dependencies=["payments"]
    )
    assert [e.summary for e in ranked] == [
        "v2.3.1",
        "timeout 2s",
        "new_pricing",
        "old deploy",
        "unrelated service",
    ]
    assert [e.scope for e in ranked] == ["service", "dependency", "global", "service", "other"]
    assert ranked[0].lead == timedelta(minutes=3) and 0.8 < ranked[0].score <= 1.0


def test_grace_admits_clock_skew_and_kind_weights_can_be_changed():
    events = [event(-0.5, "deploy", "api", "just after"), event(10, "canary", "api", "canary")]
    assert [e.summary for e in isolate_events(events, ONSET, 3600, service="api")] == ["canary"]
    ranked = isolate_events(
        events, ONSET, 3600, service="api", grace=60, kind_weights={"canary": 0.1}
    )
    assert [e.summary for e in ranked] == ["just after", "canary"]


def test_an_event_without_a_time_is_named_with_the_fix():
    with pytest.raises(
        ValueError,
        match="an event has no 'ts' column; its columns are kind, "
        "service. Select ts, kind, service, summary from events",
    ):
        isolate_events([{"kind": "deploy", "service": "api"}], ONSET)
