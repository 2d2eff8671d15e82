"""The local executor end to end: fan-out, chaining, follow-ups, failures, ranking."""

from datetime import timedelta

import pytest

from casebook.executor.investigation import run_investigation
from casebook.executor.planner import Limits
from casebook.executor.runtime.local import LocalRuntime
from casebook.sdk.registry import Registry
from casebook.sdk.testing import DEFAULT_START, TinyStore, make_alert


@pytest.fixture
def team_registry(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "fixtures" / "packs"))
    registry = Registry()
    registry.load("team_pack")
    return registry.checked()


def store():
    moment = DEFAULT_START - timedelta(minutes=5)
    return TinyStore().add("logs", [
        {"ts": moment, "service": "api", "level": "error", "message": "boom"}] * 3).add(
        "metrics", [{"ts": moment, "name": "dep", "service": name, "value": value}
                    for name, value in (("db", 5.0), ("cache", 0.0), ("queue", 0.5))])


def investigate(registry, alert, limits=None):
    tiny = store()
    return run_investigation(alert, registry=registry, source=tiny.source,
                             runtime=LocalRuntime(), limits=limits)


def test_fan_out_chaining_and_follow_ups(team_registry):
    record = investigate(team_registry, make_alert("Errors", service="api"))
    keys = sorted(i.key for i in record.invocations)
    assert keys == [
        'deep_dive{"target":"db"}',
        'dependency_check{"dependency":"cache"}',
        'dependency_check{"dependency":"db"}',
        'dependency_check{"dependency":"queue"}',
        'error_spike{"service":"api"}',
    ]
    by_analyzer = {f.analyzer: f for f in record.findings}
    assert set(by_analyzer) == {"error_spike", "dependency_check", "deep_dive"}
    spike = by_analyzer["error_spike"]
    # The dependency finding and the follow-up both came from the error spike.
    assert by_analyzer["dependency_check"].led_from == [spike.id]
    assert by_analyzer["deep_dive"].led_from == [spike.id]
    assert by_analyzer["dependency_check"].explains == [spike.id]
    follow = next(i for i in record.invocations if i.analyzer == "deep_dive")
    assert follow.depth == 1 and follow.parent == 'error_spike{"service":"api"}'


def test_the_explaining_cause_outranks_what_it_explains(team_registry):
    record = investigate(team_registry, make_alert("Errors", service="api"))
    top = record.causes[0]
    assert (top.entity.name, top.category) == ("db", "dependency")
    assert record.status == "done"


def test_depth_limit_stops_follow_ups(team_registry):
    record = investigate(team_registry, make_alert("Errors", service="api"),
                         Limits(max_depth=0))
    assert all(i.analyzer != "deep_dive" for i in record.invocations)
    assert any("depth limit 0 reached" in note for note in record.notes)


def test_unmatched_alert_runs_nothing_and_missing_labels_skip(team_registry):
    assert investigate(team_registry, make_alert("Other", service="api")).invocations == []
    record = investigate(team_registry, make_alert("Errors"))
    skipped = {i.analyzer: i for i in record.invocations}
    assert skipped["error_spike"].status == "skipped"
    assert "no value for parameter 'service'" in skipped["error_spike"].error
    assert record.causes == []


def test_python_that_never_returns_times_out_and_the_rest_completes():
    from casebook.sdk import Finding, Telemetry, analyzer

    class Done(Finding):
        pass

    @analyzer(timeout_s=0.3)
    def hangs(telemetry: Telemetry) -> Done | None:
        import time

        while True:
            time.sleep(0.05)

    @analyzer
    def finishes(telemetry: Telemetry) -> Done | None:
        return Done(title="done", summary="finished fine", category="other")

    registry = Registry()
    from casebook.sdk.analyzer import spec_of

    registry.add(spec_of(hangs))
    registry.add(spec_of(finishes))
    record = investigate(registry, make_alert("Any"))
    statuses = {i.analyzer: i.status for i in record.invocations}
    assert statuses == {"hangs": "timeout", "finishes": "found"}
    hung = next(i for i in record.invocations if i.analyzer == "hangs")
    assert "did not return within its timeout of 0.3 s" in hung.error
