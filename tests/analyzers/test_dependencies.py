"""Dependencies: the call graph from a calls table or from traces, and localizing an anomaly."""

from datetime import timedelta

from casebook.analyzers.dependencies import CallGraph, Signal, call_graph, localize
from casebook.sdk.testing import DEFAULT_START, TinyStore, default_window, make_alert

WINDOW = default_window(make_alert(starts_at=DEFAULT_START))


def test_the_graph_comes_from_the_calls_table_when_there_is_one():
    store = TinyStore().add(
        "calls", [{"caller": "web", "callee": "api"}, {"caller": "api", "callee": "api"}]
    )
    graph = call_graph(store.telemetry(WINDOW))
    assert graph.edges == {("web", "api")} and graph.source == "the calls table"


def test_the_graph_comes_from_parent_and_child_spans_otherwise():
    ts = DEFAULT_START - timedelta(minutes=1)
    spans = [
        {
            "trace_id": "t",
            "span_id": "a",
            "parent_span_id": "",
            "service": "web",
            "name": "GET",
            "start_ts": ts,
            "duration_ms": 5.0,
            "status": "ok",
        },
        {
            "trace_id": "t",
            "span_id": "b",
            "parent_span_id": "a",
            "service": "web",
            "name": "HTTP GET",
            "start_ts": ts,
            "duration_ms": 4.0,
            "status": "ok",
        },
        {
            "trace_id": "t",
            "span_id": "c",
            "parent_span_id": "b",
            "service": "api",
            "name": "GET /x",
            "start_ts": ts,
            "duration_ms": 3.0,
            "status": "ok",
        },
    ]
    graph = call_graph(TinyStore().add("spans", spans).telemetry(WINDOW))
    assert graph.edges == {("web", "api")} and graph.source == "parent/child spans"
    assert graph.callees("web") == {"api"} and graph.callers("api") == {"web"}


def test_a_callee_that_changed_as_much_explains_its_caller():
    graph = CallGraph.of([("web", "api"), ("api", "db"), ("web", "cache")])
    found = localize(
        {
            "web": Signal(9, 2.0),
            "api": Signal(5, 1.9),
            "db": Signal(4, 1.8),
            "cache": Signal(8, 0.1),
        },
        graph,
    )
    by_name = {s.service: s for s in found}
    assert found[0].service == "cache" and by_name["db"].is_origin
    assert by_name["web"].explained_by == ["api"] and by_name["api"].explained_by == ["db"]
    assert by_name["db"].accounts_for == ["api", "web"]


def test_an_as_unusual_callee_explains_even_a_smaller_change():
    # The caller calls it several times per request: 0.3 of the caller's 1.0 is enough when
    # the callee is at least as unusual, not when it is a milder anomaly.
    graph = CallGraph.of([("list", "search")])
    unusual = localize({"list": Signal(5, 1.0), "search": Signal(5, 0.3)}, graph)
    assert unusual[0].service == "search"
    milder = localize({"list": Signal(5, 1.0), "search": Signal(3, 0.3)}, graph)
    assert milder[0].service == "list" and milder[0].explained_by == []


def test_weighing_reach_prefers_the_origin_that_accounts_for_more():
    # Two leaves, equally unusual: the one behind a chain of anomalous callers explains more,
    # and a service whose own callees are healthy is a confirmed origin.
    graph = CallGraph.of(
        [("site", "search"), ("search", "table"), ("site", "lb"), ("list", "search")]
    )
    signals = {
        "site": Signal(6, 1.0),
        "search": Signal(6, 0.9),
        "table": Signal(6, 0.8),
        "lb": Signal(6, 1.1),
        "list": Signal(6, 0.9),
    }
    found = localize(signals, graph, weigh_reach=True)
    assert [s.service for s in found][:2] == ["table", "lb"]
    assert found[0].accounts_for == ["list", "search", "site"]
    assert (
        not found[0].confirmed
        and localize({"search": Signal(6, 0.9)}, graph, weigh_reach=True)[0].confirmed
    )
