"""OTLP export requests (protobuf) as columns of logs, metrics and spans.

The one decoder behind both ways OTLP arrives: files (`casebook ingest`, read as OTLP/JSON and
parsed into the same messages) and the wire (`POST /v1/traces`, `/v1/logs`, `/v1/metrics` on
`casebook serve`). The service is the resource attribute `service.name`; other resource
attributes (except telemetry.sdk.*) join each row's map. Records that cannot become rows (no
timestamp) are counted as rejected with the reason, the way OTLP's partial success reports them.

Records are read straight into column lists; the map column holds numbered (key, value) pairs,
each decoded once per request, and a row lists the numbers of its pairs (see `MapColumn`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from casebook.executor.ingest.otlp_messages import (
    OFFICIAL,
    RAW,
    KeyValueCache,
    parse_raw,
    text_of,
)
from casebook.executor.telemetry_store.conformance import LEVEL_SYNONYMS

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
    "spans": ("resourceSpans", OFFICIAL["spans"]),
    "logs": ("resourceLogs", OFFICIAL["logs"]),
    "metrics": ("resourceMetrics", OFFICIAL["metrics"]),
}
STATUS_KEY, KIND_KEY = "otel.status_description", "span.kind"
# Columns of numbers are filled as machine-typed arrays (array module type codes).
NUMBERS = {TIMESTAMP: "q", pa.float64(): "d"}
KEY_VALUES = KeyValueCache()  # shared by all requests: attributes repeat across them


class MapColumn:
    """A text-to-text map column kept as numbered (key, value) pairs and, per row, the numbers
    of its pairs: a row costs a list extend, and Arrow gets flat keys and values by `take`."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.ids = array("i")  # machine ints: Arrow takes their buffer without converting
        self.offsets = array("i", [0])
        self._pairs: dict[tuple[str, str], int] = {}
        self._encoded: dict[bytes, int | None] = {}

    def pair(self, key: str, value: str) -> int:
        """The number of a (key, value) pair, numbering it when new."""
        number = self._pairs.get((key, value))
        if number is None:
            number = self._pairs[(key, value)] = len(self.keys)
            self.keys.append(key)
            self.values.append(value)
        return number

    def numbered(self, mapping: dict[str, str]) -> dict[str, int]:
        return {key: self.pair(key, value) for key, value in mapping.items()}

    def merged(self, base: dict[str, int], encoded: tuple[bytes, ...]) -> dict[str, int]:
        """`base` updated with encoded OTLP key-values (a later key replaces an earlier one in
        place, unset values are left out): `{**base, **attributes}` as pair numbers."""
        merged = dict(base)
        for raw in encoded:
            number = self._encoded.get(raw, -1)
            if number == -1:
                key, text = KEY_VALUES.get(raw)
                number = self._encoded[raw] = None if text is None else self.pair(key, text)
            if number is not None:
                merged[self.keys[number]] = number
        return merged

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def arrow(self) -> pa.Array:
        take = from_buffer(pa.int32(), self.ids)
        keys = pa.array(self.keys, STRING).take(take)
        values = pa.array(self.values, STRING).take(take)
        return pa.MapArray.from_arrays(from_buffer(pa.int32(), self.offsets), keys, values)


@dataclass
class Rows:
    """Column lists for one table, filled record by record, plus what had to be left out."""

    table: str
    columns: dict[str, Any] = field(default_factory=dict)
    rejected: int = 0
    problem: str | None = None  # the first reason a record was rejected

    def __post_init__(self) -> None:
        self.columns = {name: MapColumn() if kind == TEXT_MAP else
                        array(NUMBERS[kind]) if kind in NUMBERS else []
                        for name, kind in COLUMNS[self.table].items()}

    def reject(self, problem: str) -> None:
        self.rejected += 1
        self.problem = self.problem or problem

    @property
    def count(self) -> int:
        return len(next(iter(self.columns.values())))

    def arrow(self) -> pa.Table:
        kinds = COLUMNS[self.table]
        return pa.table({name: _arrow(values, kinds[name]) for name, values in self.columns.items()})


def _arrow(values: Any, kind: pa.DataType) -> pa.Array:
    if isinstance(values, MapColumn):
        return values.arrow()
    if isinstance(values, array):
        return from_buffer(kind, values)
    return pa.array(values, kind)


def from_buffer(kind: pa.DataType, values: array) -> pa.Array:
    """An Arrow array over a machine-typed array's own memory (no nulls, no copy)."""
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def request_rows(request: Any) -> Rows:
    """Rows of the table an export request (a parsed protobuf message) fills."""
    for table, official in OFFICIAL.items():
        if isinstance(request, official):
            return decode_request(table, request.SerializeToString())
        if isinstance(request, RAW[table]):
            return _DECODERS[table](request)
    raise TypeError(f"not an OTLP export request: {type(request).__name__}")


def decode_request(table: str, body: bytes) -> Rows:
    """Rows of `table` (spans, logs or metrics) from an encoded export request; raises
    google.protobuf's DecodeError for bytes that are not one."""
    return _DECODERS[table](parse_raw(table, body))


def _resource(resource: Resource) -> tuple[str, dict[str, str]]:
    attributes = {}
    for item in resource.attributes:
        text = text_of(item.value)
        if text is not None:
            attributes[item.key] = text
    service = attributes.pop("service.name", None) or UNKNOWN_SERVICE
    shared = {k: v for k, v in attributes.items() if not k.startswith("telemetry.sdk.")}
    return service, shared


def _span_rows(request: Any) -> Rows:
    rows = Rows("spans")
    trace_ids, span_ids, parents, services, names, starts, durations, statuses, attributes = (
        rows.columns.values())
    ids, offsets = attributes.ids, attributes.offsets
    for resource in request.resource_spans:
        service, shared = _resource(resource.resource)
        base = attributes.numbered(shared)
        kinds = {k: attributes.pair(KIND_KEY, SPAN_KINDS[k]) for k in range(1, len(SPAN_KINDS))}
        # Per distinct encoded attribute list: its pair numbers, merged over the resource's.
        seen: dict[tuple[bytes, ...], tuple[tuple[int, ...], dict[str, int] | None]] = {}
        before = len(starts)
        for scope in resource.scope_spans:
            for span in scope.spans:
                start = span.start_time_unix_nano
                if not start:
                    rows.reject(f"expected startTimeUnixNano on every span, found span "
                                f"{span.name!r} without it")
                    continue
                encoded = tuple(span.attributes[:])  # one call; iterating is much slower
                found = seen.get(encoded)
                if found is None:
                    merged = attributes.merged(base, encoded)
                    clash = STATUS_KEY in merged or KIND_KEY in merged
                    found = seen[encoded] = (tuple(merged.values()), merged if clash else None)
                numbers, clashing = found
                status = span.status
                message, kind = status.message, kinds.get(span.kind)
                if clashing is not None:  # the span's attributes name a key added below
                    merged = dict(clashing)  # ... which then keeps its place, as in a dict
                    if message:
                        merged[STATUS_KEY] = attributes.pair(STATUS_KEY, message)
                    if kind is not None:
                        merged[KIND_KEY] = kind
                    ids.extend(merged.values())
                else:
                    ids.extend(numbers)
                    if message:
                        ids.append(attributes.pair(STATUS_KEY, message))
                    if kind is not None:
                        ids.append(kind)
                offsets.append(len(ids))
                end = span.end_time_unix_nano or start
                trace_ids.append(span.trace_id.hex())
                span_ids.append(span.span_id.hex())
                parents.append(span.parent_span_id.hex() or None)
                names.append(span.name)
                starts.append(start // 1000)
                durations.append((end - start) / 1e6)
                statuses.append("error" if status.code == STATUS_ERROR else "ok")
        services.extend([service] * (len(starts) - before))
    return rows


def _log_rows(request: Any) -> Rows:
    rows = Rows("logs")
    ts, services, levels, messages, trace_ids, span_ids, attributes = rows.columns.values()
    ids, offsets = attributes.ids, attributes.offsets
    level_of: dict[tuple[str, int], str] = {}
    for resource in request.resource_logs:
        service, shared = _resource(resource.resource)
        base = attributes.numbered(shared)
        seen: dict[tuple[bytes, ...], tuple[int, ...]] = {}
        before = len(ts)
        for scope in resource.scope_logs:
            for record in scope.log_records:
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                if not nanos:
                    rows.reject("expected timeUnixNano or observedTimeUnixNano on every log "
                                "record, found a record with neither")
                    continue
                encoded = tuple(record.attributes[:])
                numbers = seen.get(encoded)
                if numbers is None:
                    numbers = seen[encoded] = tuple(attributes.merged(base, encoded).values())
                ids.extend(numbers)
                offsets.append(len(ids))
                severity = (record.severity_text, record.severity_number)
                level = level_of.get(severity)
                if level is None:
                    level = level_of[severity] = _level(*severity)
                body = record.body
                ts.append(nanos // 1000)
                levels.append(level)
                messages.append(body.string_value or text_of(body) or "")
                trace_ids.append(record.trace_id.hex() or None)
                span_ids.append(record.span_id.hex() or None)
        services.extend([service] * (len(ts) - before))
    return rows


def _metric_rows(request: Any) -> Rows:
    rows = Rows("metrics")
    ts, names, services, values, labels = rows.columns.values()
    for resource in request.resource_metrics:
        service, shared = _resource(resource.resource)
        base = labels.numbered(shared)
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point, suffix, value, extra in _samples(metric):
                    if not point.time_unix_nano:
                        rows.reject(f"expected timeUnixNano on every data point of metric "
                                    f"{metric.name!r}, found a point without it")
                        continue
                    merged = labels.merged(base, tuple(point.attributes[:]))
                    merged.update(labels.numbered(extra))
                    labels.ids.extend(merged.values())
                    labels.offsets.append(len(labels.ids))
                    ts.append(point.time_unix_nano // 1000)
                    names.append(metric.name + suffix)
                    services.append(service)
                    values.append(value)
    return rows


_DECODERS = {"spans": _span_rows, "logs": _log_rows, "metrics": _metric_rows}


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


def _level(text: str, number: int) -> str:
    """The schema's spelling of a record's level: its text, else its severity number's band."""
    text = text.strip().lower()
    if text:
        return LEVEL_SYNONYMS.get(text, text)
    return SEVERITY_BANDS[(number - 1) // 4] if 1 <= number <= 24 else "unspecified"
