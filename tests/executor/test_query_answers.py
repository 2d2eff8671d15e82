"""Answers kept by a store's pinned connection: the same as a fresh scan, gone with new data."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from casebook.executor.telemetry_store import TelemetryStore
from casebook.executor.telemetry_store.answers import QueryAnswers
from casebook.executor.telemetry_store.keeper import SourceKeeper
from casebook.sdk import Finding
from casebook.sdk.models import TimeWindow
from casebook.sdk.telemetry import QueryResult, Telemetry

NOON = datetime(2026, 1, 1, 12, 0)
WINDOW = TimeWindow(start=NOON - timedelta(minutes=30), end=NOON + timedelta(minutes=30))
ERRORS = "select service, count(*) as errors from logs where level = ? group by 1 order by 1"


def logs(*rows: tuple) -> pa.Table:
    """Rows of (ts, service, level, message)."""
    columns = ("ts", "service", "level", "message")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})


@pytest.fixture
def store(tmp_path) -> TelemetryStore:
    store = TelemetryStore.open(tmp_path / "store", create=True)
    store.append("logs", logs((NOON, "api", "error", "boom"), (NOON, "db", "error", "slow"),
                              (NOON, "api", "info", "ok")))
    return store


def test_a_kept_answer_equals_a_fresh_scan(store):
    source = store.source()
    first = source.open(WINDOW).sql(ERRORS, ["error"])
    kept = source.open(WINDOW).sql(ERRORS, ["error"])  # another investigation's handle
    fresh = store.source().open(WINDOW).sql(ERRORS, ["error"])
    assert source.answers.hits == 1
    assert kept == fresh == first
    assert kept.rows == [("api", 1), ("db", 1)]
    assert kept.rows is not first.rows  # an analyzer changing its rows changes no one else's


def test_the_answer_depends_on_the_window_and_the_parameters(store):
    source = store.source()
    later = TimeWindow(start=NOON + timedelta(minutes=1), end=NOON + timedelta(hours=1))
    assert source.open(WINDOW).sql(ERRORS, ["error"]).rows == [("api", 1), ("db", 1)]
    assert source.open(later).sql(ERRORS, ["error"]).rows == []
    assert source.open(WINDOW).sql(ERRORS, ["info"]).rows == [("api", 1)]
    assert source.answers.hits == 0


def test_the_query_text_travels_as_the_analyzer_wrote_it(store):
    source = store.source()
    source.open(WINDOW).sql(ERRORS, ["error"])
    spaced = ERRORS.replace(" from ", "\n  from ")
    answer = source.open(WINDOW).sql(spaced, ["error"])
    assert answer.query == spaced  # the evidence shows the query that was sent


def test_new_data_is_read_by_the_next_investigation(store):
    keeper = SourceKeeper()
    before = keeper.source(store)
    assert before.open(WINDOW).sql(ERRORS, ["error"]).rows == [("api", 1), ("db", 1)]
    assert keeper.source(store) is before  # nothing written: the connection and answers stay
    store.append("logs", logs((NOON, "cache", "error", "evicted")))
    after = keeper.source(store)
    assert after is not before
    assert after.open(WINDOW).sql(ERRORS, ["error"]).rows == [
        ("api", 1), ("cache", 1), ("db", 1)
    ]


def test_queries_that_read_the_clock_or_chance_always_run(store):
    source = store.source()
    for query in (
        "select count(*), now() from logs",
        "select count(*) from logs where random() < 2",
        "select * from logs using sample 1",
    ):
        source.open(WINDOW).sql(query)
        source.open(WINDOW).sql(query)
    assert source.answers.hits == 0
    assert len(source.answers) == 0


def test_a_duckdb_file_store_keeps_no_answers(tmp_path):
    store = TelemetryStore.open(tmp_path / "store.duckdb", create=True)
    store.append("logs", logs((NOON, "api", "error", "boom")))
    assert store.source().answers is None
    assert SourceKeeper().source(store) is not SourceKeeper().source(store)


def test_the_cache_is_bounded_by_answers_and_rows():
    answers = QueryAnswers(max_answers=2, max_rows=5, max_rows_each=3)
    big = QueryResult("q", [], ["n"], [(i,) for i in range(4)])
    answers.put(answers.key("w", "big", []), big)
    assert len(answers) == 0  # larger than one answer may be
    for name in ("a", "b", "c"):
        answers.put(answers.key("w", name, []), QueryResult(name, [], ["n"], [(1,), (2,)]))
    assert len(answers) == 2
    assert answers.get(answers.key("w", "a", []), "a", []) is None  # the oldest went first
    assert answers.get(answers.key("w", "c", []), "c", []).rows == [(1,), (2,)]


def test_equal_values_of_other_types_are_other_questions():
    answers = QueryAnswers()
    assert answers.key("w", "q", [1]) != answers.key("w", "q", [True])
    assert answers.key("w", "q", [1]) != answers.key("w", "q", [1.0])
    assert answers.key("w", "q", [[1, 2]]) is None


class ErrorCount(Finding):
    errors: int


def test_the_analyzer_process_reads_new_data_in_its_next_investigation(store):
    """`--local`'s child keeps its store connection between investigations, not past a write."""
    from casebook.executor.investigation import run_investigation
    from casebook.executor.runtime.local import LocalRuntime
    from casebook.sdk import analyzer
    from casebook.sdk.analyzer import spec_of
    from casebook.sdk.registry import Registry
    from casebook.sdk.testing import make_alert

    @analyzer(name="error_count")
    def error_count(telemetry: Telemetry) -> ErrorCount:
        """How many error lines the window holds."""
        errors = telemetry.sql("select count(*) from logs where level = 'error'").scalar()
        return ErrorCount(title=f"{errors} errors", summary="counted", category="other",
                          confidence=0.5, errors=errors)

    registry = Registry()
    registry.add(spec_of(error_count))
    alert = make_alert("Errors", service="api", starts_at=NOON.replace(tzinfo=UTC))
    runtime = LocalRuntime()

    def counted() -> tuple[int, int | None]:
        record = run_investigation(alert, registry=registry, source=store.source(),
                                   runtime=runtime, store_path=store.url)
        (finding,) = record.findings
        return finding.facts["errors"], runtime._child.pid

    try:
        first, child = counted()
        again, same_child = counted()
        store.append("logs", logs((NOON, "cache", "error", "evicted")))
        after, still_same = counted()
    finally:
        runtime.shutdown()
    assert (first, again, after) == (2, 2, 3)
    assert child == same_child == still_same  # one process throughout: its connection is kept
