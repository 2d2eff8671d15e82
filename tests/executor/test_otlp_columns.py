"""The receivers' columnar OTLP decoder stores exactly the rows the message-walking decoder did:
requests from the OpenTelemetry SDK's own encoders, and hand-built ones with every corner the
decoder has (duplicate keys, keys it adds itself, values of every kind, rejected records)."""

import sys
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from casebook.executor.ingest.otlp_messages import RAW
from casebook.executor.ingest.otlp_rows import decode_request
from casebook.executor.intake.spool import Spool
from casebook.executor.telemetry_store import TelemetryStore

sys.path.insert(0, str(Path(__file__).parent))
import otlp_reference  # noqa: E402

NOON_NANOS = 1767268800000000000  # 2026-01-01 12:00 UTC
MAP_COLUMN = {"spans": "attributes", "logs": "attributes", "metrics": "labels"}


def stored_both_ways(tmp_path: Path, table: str, request) -> tuple[list, list]:
    """Rows of `table` as the reference decoder stored them (conformed, into a DuckDB-file
    store) and as the receivers store them now (columnar decoder, spool, Parquet store)."""
    body = request.SerializeToString()
    reference = otlp_reference.request_rows(request)
    old = TelemetryStore.open(tmp_path / "old.duckdb", create=True)
    old.append(table, reference.arrow())
    new_rows = decode_request(table, body)
    assert (new_rows.rejected, new_rows.problem) == (reference.rejected, reference.problem)
    new = TelemetryStore.open(tmp_path / "new", create=True)
    spool = Spool(tmp_path / "spool", new)
    assert spool.accept("request", {table: new_rows.arrow()})
    spool.flush()
    spool.close()
    column = MAP_COLUMN[table]
    # map_entries keeps the order of a map's keys, which a dict comparison would not check.
    query = f"select * replace (map_entries({column}) as {column}) from raw.{table}"
    results = []
    for store in (old, new):
        with store.connect() as con:
            results.append(sorted(con.execute(query).fetchall(), key=repr))
    return results[0], results[1]


def attribute(items, key: str, **value) -> None:
    item = items.add()
    item.key = key
    for kind, content in value.items():
        if kind == "array_value":
            for element in content:
                item.value.array_value.values.add(string_value=element)
        elif kind == "kvlist_value":
            for inner_key, inner in content.items():
                item.value.kvlist_value.values.add(key=inner_key).value.int_value = inner
        else:
            setattr(item.value, kind, content)


def test_spans_from_the_sdk_encoder_are_stored_as_before(tmp_path):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "checkout", "k8s.pod.name": "checkout-1", "region": "eu"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as parent:
        parent.set_attributes({"http.status_code": 502, "retry": True, "ratio": 0.25,
                               "tags": ["a", "b"], "region": "us"})  # overrides the resource's
        parent.set_status(Status(StatusCode.ERROR, "card declined"))
        for n in range(3):
            with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as child:
                child.set_attribute("db.rows", n % 2)
                child.add_event("retry", {"attempt": n})
    provider.shutdown()
    request = encode_spans(exporter.get_finished_spans())
    old, new = stored_both_ways(tmp_path, "spans", request)
    assert new == old
    [pay] = [row for row in new if row[4] == "POST /pay"]
    assert (pay[3], pay[7]) == ("checkout", "error")
    entries = [(e["key"], e["value"]) for e in pay[8] if e["key"] != "service.instance.id"]
    assert entries == [
        ("k8s.pod.name", "checkout-1"), ("region", "us"), ("http.status_code", "502"),
        ("retry", "true"), ("ratio", "0.25"), ("tags", '["a", "b"]'),
        ("otel.status_description", "card declined"), ("span.kind", "server")]


def test_hand_built_spans_keep_every_corner_as_before(tmp_path):
    request = ExportTraceServiceRequest()
    for service in ("web", None):
        resource = request.resource_spans.add()
        if service:
            attribute(resource.resource.attributes, "service.name", string_value=service)
        attribute(resource.resource.attributes, "telemetry.sdk.name", string_value="x")
        attribute(resource.resource.attributes, "team", string_value="core")
        for scope_number in range(2):
            spans = resource.scope_spans.add().spans
            for n in range(6):
                span = spans.add(trace_id=bytes([n] * 16), span_id=bytes([n, scope_number] * 4),
                                 name=f"op-{n % 3}", kind=n % 7,
                                 start_time_unix_nano=NOON_NANOS + n,
                                 end_time_unix_nano=(NOON_NANOS + n * 1_000_000) if n % 2 else 0)
                if n == 1:
                    span.parent_span_id = bytes(8)
                if n == 2:
                    span.start_time_unix_nano = 0  # rejected: no start
                if n in (3, 4):
                    span.status.code, span.status.message = 2, f"failed {n}"
                attribute(span.attributes, "team", string_value="edge")  # over the resource's
                attribute(span.attributes, "dup", int_value=1)
                attribute(span.attributes, "unset")  # no value: left out
                attribute(span.attributes, "dup", double_value=2.5)  # later one wins, in place
                if n == 4:
                    attribute(span.attributes, "span.kind", string_value="mine")
                    attribute(span.attributes, "otel.status_description", string_value="mine")
                attribute(span.attributes, "raw", bytes_value=b"\x00\xff")
                attribute(span.attributes, "list", array_value=["x", "y"])
                attribute(span.attributes, "nested", kvlist_value={"a": n})
    old, new = stored_both_ways(tmp_path, "spans", request)
    assert new == old
    assert len(new) == 20


def test_logs_from_the_sdk_and_by_hand_are_stored_as_before(tmp_path):
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "cart"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("test")
    for text, number, body in (("WARNING", SeverityNumber.WARN, "slow"),
                               ("", SeverityNumber.ERROR, {"code": 7}),
                               (" Critical ", SeverityNumber.FATAL, 42),
                               ("info", SeverityNumber.INFO, "")):
        logger.emit(body=body, severity_text=text or None, severity_number=number,
                    attributes={"account": "a-17", "attempt": 2}, timestamp=NOON_NANOS)
    provider.shutdown()
    request = encode_logs(exporter.get_finished_logs())
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(observed_time_unix_nano=NOON_NANOS, severity_number=30).body.bool_value = True
    records.add(severity_text="info")  # rejected: no time at all
    old, new = stored_both_ways(tmp_path, "logs", request)
    assert new == old
    assert sorted(row[2] for row in new) == ["error", "fatal", "info", "unspecified", "warn"]


def test_metrics_from_the_sdk_are_stored_as_before(tmp_path):
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "api"}),
                             metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_counter("requests").add(5, {"route": "/pay", "code": 200})
    meter.create_up_down_counter("in_flight").add(-2)
    histogram = meter.create_histogram("latency_ms")
    for value in (3, 40, 900):
        histogram.record(value, {"route": "/pay"})
    request = encode_metrics(reader.get_metrics_data())
    provider.shutdown()
    summary = request.resource_metrics[0].scope_metrics[0].metrics.add(name="rpc").summary
    point = summary.data_points.add(time_unix_nano=NOON_NANOS, count=4, sum=9.5)
    attribute(point.attributes, "quantile", string_value="not this one")
    point.quantile_values.add(quantile=0.99, value=7.0)
    summary.data_points.add(count=1)  # rejected: no time
    old, new = stored_both_ways(tmp_path, "metrics", request)
    assert new == old
    assert {row[1] for row in new} == {"requests", "in_flight", "latency_ms_count",
                                       "latency_ms_sum", "rpc_count", "rpc_sum", "rpc"}


def test_bytes_that_are_not_a_request_are_refused():
    with pytest.raises(DecodeError):
        decode_request("logs", b"\xff\x01not protobuf")
    broken = RAW["logs"]()
    record = broken.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1)
    record.attributes.append(b"\x0a\x01\xff")  # a KeyValue whose key is not UTF-8
    body = broken.SerializeToString()
    with pytest.raises(DecodeError):
        ExportLogsServiceRequest.FromString(body)  # refused by the full parse ...
    with pytest.raises(DecodeError):
        decode_request("logs", body)  # ... and as much by the columnar one
