"""The OTLP decoder as it was before the receivers' columnar one: every record walked through
the protobuf messages into Python dicts. Kept only as the reference the tests compare the
columnar decoder against, row for row.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

UNKNOWN_SERVICE = "unknown_service"  # OpenTelemetry's own fallback when service.name is unset
# OTLP severity numbers come in bands of four: 1-4 trace, 5-8 debug, ... 21-24 fatal.
SEVERITY_BANDS = ("trace", "debug", "info", "warn", "error", "fatal")
SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_ERROR = 2
STRING = pa.string()
TIMESTAMP = pa.timestamp("us")
TEXT_MAP = pa.map_(pa.string(), pa.string())
COLUMNS = {
    "logs": {"ts": TIMESTAMP, "service": STRING, "level": STRING, "message": STRING,
             "trace_id": STRING, "span_id": STRING, "attributes": TEXT_MAP},
    "metrics": {"ts": TIMESTAMP, "name": STRING, "service": STRING, "value": pa.float64(),
                "labels": TEXT_MAP},
    "spans": {"trace_id": STRING, "span_id": STRING, "parent_span_id": STRING,
              "service": STRING, "name": STRING, "start_ts": TIMESTAMP,
              "duration_ms": pa.float64(), "status": STRING, "attributes": TEXT_MAP},
}  # fmt: skip
# What each signal's request is called in OTLP/JSON, and its message type.
REQUESTS: dict[str, tuple[str, type]] = {
    "spans": ("resourceSpans", ExportTraceServiceRequest),
    "logs": ("resourceLogs", ExportLogsServiceRequest),
    "metrics": ("resourceMetrics", ExportMetricsServiceRequest),
}


class MapColumn:
    """A text-to-text map column kept flat (offsets, keys, values): cheaper to fill and to turn
    into Arrow than a list of pair lists."""

    def __init__(self) -> None:
        self.offsets = [0]
        self.keys: list[str] = []
        self.values: list[str] = []

    def append(self, mapping: dict[str, str]) -> None:
        self.keys.extend(mapping)
        self.values.extend(mapping.values())
        self.offsets.append(len(self.keys))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def arrow(self) -> pa.Array:
        return pa.MapArray.from_arrays(pa.array(self.offsets, pa.int32()),
                                       pa.array(self.keys, STRING), pa.array(self.values, STRING))


@dataclass
class Rows:
    """Column lists for one table, filled record by record, plus what had to be left out."""

    table: str
    columns: dict[str, list[Any]] = field(default_factory=dict)
    rejected: int = 0
    problem: str | None = None  # the first reason a record was rejected

    def __post_init__(self) -> None:
        self.columns = {name: MapColumn() if kind == TEXT_MAP else []
                        for name, kind in COLUMNS[self.table].items()}

    def reject(self, problem: str) -> None:
        self.rejected += 1
        self.problem = self.problem or problem

    @property
    def count(self) -> int:
        return len(next(iter(self.columns.values())))

    def arrow(self) -> pa.Table:
        kinds = COLUMNS[self.table]
        return pa.table({
            name: values.arrow() if isinstance(values, MapColumn) else pa.array(values, kinds[name])
            for name, values in self.columns.items()
        })


def request_rows(request: Any) -> Rows:
    """Rows of the table an export request fills (spans, logs or metrics)."""
    if isinstance(request, ExportTraceServiceRequest):
        return _span_rows(request)
    if isinstance(request, ExportLogsServiceRequest):
        return _log_rows(request)
    if isinstance(request, ExportMetricsServiceRequest):
        return _metric_rows(request)
    raise TypeError(f"not an OTLP export request: {type(request).__name__}")


def _resource(resource: Any) -> tuple[str, dict[str, str]]:
    attributes = attribute_map(resource.resource.attributes)
    service = attributes.pop("service.name", None) or UNKNOWN_SERVICE
    shared = {k: v for k, v in attributes.items() if not k.startswith("telemetry.sdk.")}
    return service, shared


def _log_rows(request: ExportLogsServiceRequest) -> Rows:
    rows = Rows("logs")
    ts, services, levels, messages = (rows.columns[c] for c in ("ts", "service", "level", "message"))
    trace_ids, span_ids, attributes = (rows.columns[c] for c in ("trace_id", "span_id", "attributes"))
    for resource in request.resource_logs:
        service, shared = _resource(resource)
        for scope in resource.scope_logs:
            for record in scope.log_records:
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                if not nanos:
                    rows.reject("expected timeUnixNano or observedTimeUnixNano on every log "
                                "record, found a record with neither")
                    continue
                ts.append(nanos // 1000)
                services.append(service)
                levels.append(_level(record))
                messages.append(text_of(record.body) or "")
                trace_ids.append(record.trace_id.hex() or None)
                span_ids.append(record.span_id.hex() or None)
                attributes.append({**shared, **attribute_map(record.attributes)})
    return rows


def _metric_rows(request: ExportMetricsServiceRequest) -> Rows:
    rows = Rows("metrics")
    ts, names, services, values, labels = rows.columns.values()
    for resource in request.resource_metrics:
        service, shared = _resource(resource)
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point, suffix, value, extra in _samples(metric):
                    if not point.time_unix_nano:
                        rows.reject(f"expected timeUnixNano on every data point of metric "
                                    f"{metric.name!r}, found a point without it")
                        continue
                    ts.append(point.time_unix_nano // 1000)
                    names.append(metric.name + suffix)
                    services.append(service)
                    values.append(value)
                    labels.append({**shared, **attribute_map(point.attributes), **extra})
    return rows


def _samples(metric: Any):
    """(data point, name suffix, value, extra labels) for each number a metric carries."""
    kind = metric.WhichOneof("data")
    if kind in ("gauge", "sum"):
        for point in getattr(metric, kind).data_points:
            which = point.WhichOneof("value")
            if which is not None:
                yield point, "", float(getattr(point, which)), {}
    elif kind in ("histogram", "exponential_histogram", "summary"):
        for point in getattr(metric, kind).data_points:
            yield point, "_count", float(point.count), {}
            if kind == "summary" or point.HasField("sum"):
                yield point, "_sum", float(point.sum), {}
            if kind == "summary":
                for quantile in point.quantile_values:
                    yield point, "", float(quantile.value), {"quantile": str(quantile.quantile)}


def _span_rows(request: ExportTraceServiceRequest) -> Rows:
    rows = Rows("spans")
    trace_ids, span_ids, parents, services, names, starts, durations, statuses, attributes = (
        rows.columns.values())
    for resource in request.resource_spans:
        service, shared = _resource(resource)
        for scope in resource.scope_spans:
            for span in scope.spans:
                start = span.start_time_unix_nano
                if not start:
                    rows.reject(f"expected startTimeUnixNano on every span, found span "
                                f"{span.name!r} without it")
                    continue
                end = span.end_time_unix_nano or start
                extra = {**shared, **attribute_map(span.attributes)}
                if span.status.message:
                    extra["otel.status_description"] = span.status.message
                if 0 < span.kind < len(SPAN_KINDS):
                    extra["span.kind"] = SPAN_KINDS[span.kind]
                trace_ids.append(span.trace_id.hex())
                span_ids.append(span.span_id.hex())
                parents.append(span.parent_span_id.hex() or None)
                services.append(service)
                names.append(span.name)
                starts.append(start // 1000)
                durations.append((end - start) / 1e6)
                statuses.append("error" if span.status.code == STATUS_ERROR else "ok")
                attributes.append(extra)
    return rows


def _level(record: Any) -> str:
    text = record.severity_text.strip().lower()
    if text:
        return text
    number = record.severity_number
    return SEVERITY_BANDS[(number - 1) // 4] if 1 <= number <= 24 else "unspecified"


def attribute_map(items: Any) -> dict[str, str]:
    """OTLP key-value attributes as text (see `text_of`); unset values are left out."""
    attributes = {}
    for item in items:
        text = text_of(item.value)
        if text is not None:
            attributes[item.key] = text
    return attributes


def text_of(value: AnyValue) -> str | None:
    """An AnyValue as text: strings as they are, arrays and key-value lists as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return None
    plain = _plain(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, (int, float, str)):
        return str(plain)
    return json.dumps(plain)


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {p.key: _plain(p.value) for p in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)
