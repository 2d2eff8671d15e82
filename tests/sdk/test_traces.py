from datetime import UTC, datetime, timedelta

import pytest

from casebook.sdk.traces import analyze_spans

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def span(trace, span_id, parent, service, duration, status="ok", start=None, name="op"):
    row = {
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "service": service,
        "name": name,
        "duration_ms": duration,
        "status": status,
    }
    if start is not None:
        row["start_ts"] = T0 + timedelta(milliseconds=start)
    return row


def test_errors_are_blamed_where_they_start_not_where_they_pass():
    spans = []
    for i in range(10):
        failing = i < 4
        spans += [
            span(f"t{i}", "a", "", "gateway", 50, "error" if failing else "ok"),
            span(f"t{i}", "b", "a", "cart", 40, "error" if failing else "ok"),
            span(f"t{i}", "c", "b", "redis", 10, "error" if failing else "ok", name="GET"),
            span(f"t{i}", "d", "a", "auth", 5),
        ]
    result = analyze_spans(spans)
    assert result.error_origin.service == "redis"
    assert result.error_origin.origin_errors == 4 and result.error_origin.origin_rate == 0.4
    assert result.error_origin.origin_operations == {"GET": 4}
    assert result.service("cart").errors == 4 and result.service("cart").origin_errors == 0
    assert result.traces == 10 and result.services[0].service == "redis"


def test_added_latency_is_the_self_time_that_grew():
    def trace(tag, db_ms):
        return [span(tag, "a", "", "api", 20 + db_ms), span(tag, "b", "a", "db", db_ms)]

    baseline = [row for i in range(5) for row in trace(f"b{i}", 10)]
    slow = [row for i in range(5) for row in trace(f"s{i}", 200)]
    result = analyze_spans(slow, baseline=baseline)
    assert result.latency_origin.service == "db"
    assert result.service("db").added_ms == pytest.approx(190.0)
    assert result.service("api").added_ms == pytest.approx(0.0)
    assert result.error_origin is None and result.baseline_traces == 5


def test_parallel_children_are_not_counted_twice():
    spans = [
        span("t", "a", "", "api", 100, start=0),
        span("t", "b", "a", "db", 60, start=10),
        span("t", "c", "a", "cache", 60, start=30),
    ]
    assert analyze_spans(spans).service("api").self_ms == pytest.approx(20.0)  # 100 - [10, 90)


def test_missing_columns_are_named_with_the_query_to_write():
    with pytest.raises(
        ValueError,
        match="a row of spans has no span_id, duration_ms; its columns "
        "are trace_id, service. Select trace_id, span_id",
    ):
        analyze_spans([{"trace_id": "t", "service": "api"}])
