"""OTLP export requests parsed for speed: the same wire format, attributes kept as raw bytes.

The receivers decode tens of thousands of spans a second, and most of a span's cost in Python
was its attributes: a message object per key-value, a `WhichOneof` per value. Here the
OpenTelemetry protos (from `opentelemetry-proto`, so the field numbers are theirs) are rebuilt
in a separate descriptor pool where the `attributes` of spans, log records and metric data
points are `repeated bytes`: each key-value arrives as its encoded bytes, which repeat from one
record to the next and are decoded once (`KeyValueCache`). A repeated field keeps one element
per occurrence on the wire either way, so the rows are the same; every other field, and every
key-value met, is parsed (and checked, such as UTF-8) exactly as before.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# Messages whose `attributes` field is read as raw bytes.
RAW_ATTRIBUTES = {
    "opentelemetry.proto.trace.v1.Span",
    "opentelemetry.proto.logs.v1.LogRecord",
    "opentelemetry.proto.metrics.v1.NumberDataPoint",
    "opentelemetry.proto.metrics.v1.HistogramDataPoint",
    "opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint",
    "opentelemetry.proto.metrics.v1.SummaryDataPoint",
}
OFFICIAL = {
    "spans": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}
CACHE_SIZE = 100_000  # key-values remembered; forgotten all at once past this


def _raw_requests() -> dict[str, type]:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def collect(descriptor: Any) -> None:
        for dependency in descriptor.dependencies:
            collect(dependency)
        if descriptor.name not in files:
            proto = descriptor_pb2.FileDescriptorProto()
            descriptor.CopyToProto(proto)
            _bytes_attributes(proto.package, proto.message_type)
            files[descriptor.name] = proto

    for request in OFFICIAL.values():
        collect(request.DESCRIPTOR.file)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.values():  # dependencies first, as collected
        pool.Add(proto)
    classes = message_factory.GetMessages(list(files.values()), pool=pool)
    return {table: classes[request.DESCRIPTOR.full_name] for table, request in OFFICIAL.items()}


def _bytes_attributes(scope: str, messages: Any) -> None:
    for message in messages:
        name = f"{scope}.{message.name}"
        if name in RAW_ATTRIBUTES:
            for field in message.field:
                if field.name == "attributes":
                    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    field.ClearField("type_name")
        _bytes_attributes(name, message.nested_type)


RAW = _raw_requests()


def parse_raw(table: str, body: bytes) -> Any:
    """The export request of `table` (spans, logs or metrics) with attributes left encoded;
    raises google.protobuf's DecodeError for bytes that are not one."""
    return RAW[table].FromString(body)


class KeyValueCache:
    """Encoded OTLP key-values -> (key, value as text, or None when unset), decoded once."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._known: dict[bytes, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> tuple[str, str | None]:
        found = self._known.get(raw)
        if found is None:
            item = KeyValue.FromString(raw)
            found = (item.key, text_of(item.value))
            with self._lock:
                if len(self._known) >= self.size:
                    self._known.clear()
                self._known[raw] = found
        return found


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
