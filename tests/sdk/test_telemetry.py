from datetime import timedelta

import pytest

from casebook.sdk import TelemetryError, TimeWindow
from casebook.sdk.testing import DEFAULT_START, TinyStore

WINDOW = TimeWindow(start=DEFAULT_START - timedelta(minutes=60), end=DEFAULT_START)


def store_with_logs():
    return TinyStore().add("logs", [
        {"ts": DEFAULT_START - timedelta(minutes=m), "service": "api", "level": "error",
         "message": f"boom {m}", "attributes": {"account": f"a{m}"}}
        for m in (5, 30, 90, 150)
    ])


def test_tables_are_scoped_to_the_window():
    telemetry = store_with_logs().telemetry(WINDOW)
    assert telemetry.sql("select count(*) from logs").scalar() == 2
    assert telemetry.baseline().sql("select count(*) from logs").scalar() == 1


def test_parameters_bind_and_maps_are_queryable():
    telemetry = store_with_logs().telemetry(WINDOW)
    result = telemetry.sql("select message from logs where attributes['account'] = ?", ["a5"])
    assert result.column("message") == ["boom 5"]


def test_writes_are_refused_with_a_clear_message():
    telemetry = store_with_logs().telemetry(WINDOW)
    with pytest.raises(TelemetryError) as caught:
        telemetry.sql("delete from logs")
    assert str(caught.value) == ("telemetry is read-only: a DELETE statement was refused; "
                                 "analyzers may only SELECT")
    with pytest.raises(TelemetryError, match="send one statement per call, got 2"):
        telemetry.sql("select 1; select 2")


def test_evidence_keeps_the_query_and_a_bounded_sample():
    telemetry = store_with_logs().telemetry(WINDOW)
    evidence = telemetry.sql("select service, count(*) as n from logs group by service").evidence()
    assert evidence.query.startswith("select service")
    assert evidence.columns == ["service", "n"]
    assert evidence.rows == [["api", 2]]


def test_shared_runs_a_grouped_query_once_per_handle():
    telemetry = store_with_logs().telemetry(WINDOW)
    query = "select service, count(*) as n from logs group by service"
    first = telemetry.shared(query)
    second = telemetry.shared(query)
    assert first is second
    assert telemetry.stats.queries == 1
    assert first.by("service")["api"]["n"] == 2


def test_metric_services_names_who_reports_each_metric_in_the_window_from_one_query():
    def sample(minutes: int, name: str, service: str | None) -> dict:
        return {"ts": DEFAULT_START - timedelta(minutes=minutes), "name": name,
                "service": service, "value": 1.0}

    store = TinyStore().add("metrics", [
        sample(5, "cache_hit_ratio", "kv"), sample(6, "cache_hit_ratio", "api"),
        sample(7, "cache_hit_ratio", "kv"), sample(8, "cache_hit_ratio", None),
        sample(9, "http_requests_total", "api"),
        sample(90, "disk_usage_ratio", "db"),  # before the window
    ])
    telemetry = store.telemetry(WINDOW)
    catalog = telemetry.metric_services()
    assert catalog == {"cache_hit_ratio": ["api", "kv", None], "http_requests_total": ["api"]}
    assert telemetry.metric_services() is catalog and telemetry.stats.queries == 1
    assert telemetry.baseline().metric_services() == {"disk_usage_ratio": ["db"]}
    assert telemetry.services_reporting("hit_ratio$|requests") == ["api", "kv", None]
    assert telemetry.services_reporting("^requests") == []
    assert store_with_logs().telemetry(WINDOW).metric_services() == {}  # no metrics table


def test_unknown_column_names_the_columns_that_exist():
    telemetry = store_with_logs().telemetry(WINDOW)
    result = telemetry.sql("select service from logs")
    with pytest.raises(TelemetryError, match="no column 'nope' in the result; columns are service"):
        result.column("nope")
