"""OpenTelemetry OTLP/JSON: the collector's file exporter output, or one pretty-printed document.

Records go to logs, metrics and spans by content. The service is the resource attribute
`service.name`; other resource attributes (except telemetry.sdk.*) join each row's map.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from casebook.executor.ingest.files import (
    LONE_SURROGATE,
    IngestError,
    Loaded,
    head,
    holds_lone_surrogate,
    not_utf8,
    open_text,
)

OTLP_START = re.compile(rb'^(\xef\xbb\xbf)?\s*\{\s*"(resourceLogs|resourceMetrics|resourceSpans)"')
UNKNOWN_SERVICE = "unknown_service"  # OpenTelemetry's own fallback when service.name is unset
# OTLP severity numbers come in bands of four: 1-4 trace, 5-8 debug, ... 21-24 fatal.
SEVERITY_BANDS = ("trace", "debug", "info", "warn", "error", "fatal")
SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
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


def is_otlp(path: Path) -> bool:
    """Whether the file starts like an OTLP/JSON export."""
    return bool(OTLP_START.match(head(path)))


def read_otlp(path: Path, file: str) -> list[Loaded]:
    """Rows for logs, metrics and spans from every OTLP/JSON document in the file."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lines: dict[str, list[int]] = defaultdict(list)
    for line, document in _documents(path, file):
        if not isinstance(document, dict):
            raise IngestError(f"{file} line {line}: expected an OTLP/JSON object, found a list")
        where = f"{file} line {line}"
        try:
            for table, parse in PARSERS.items():
                for resource in document.get(KEYS[table]) or []:
                    for row in parse(resource, where):
                        rows[table].append(row)
                        lines[table].append(line)
        except RecursionError:
            raise IngestError(
                f"{where}: expected OTLP/JSON, found values nested too deeply to read"
            ) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise IngestError(
                f"{where}: expected OTLP/JSON as the collector writes it, found a value it "
                f"cannot use ({exc})"
            ) from None
    loaded = []
    for table, records in rows.items():
        columns = COLUMNS[table]
        data = pa.table({c: pa.array([r[c] for r in records], kind) for c, kind in columns.items()})
        numbers = lines[table]
        loaded.append(Loaded(file, table, data, "otlp", lambda row, n=numbers: f"line {n[row]}"))
    return loaded


def _documents(path: Path, file: str) -> Iterator[tuple[int, Any]]:
    """Each JSON document with the line it starts on: one per line, or pretty-printed."""
    try:
        with open_text(path) as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise not_utf8(path, file) from None
    decoder = json.JSONDecoder()
    position, line, counted = 0, 1, 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        line += text.count("\n", counted, position)
        counted = position
        start = position
        try:
            document, position = decoder.raw_decode(text, position)
        except RecursionError:
            raise IngestError(
                f"{file} line {line}: expected OTLP/JSON, found a document that nests arrays "
                "and objects too deeply to read"
            ) from None
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"{file} line {exc.lineno}: expected OTLP/JSON (one object per line, as the "
                f"collector's file exporter writes), found malformed JSON ({exc.msg} at column "
                f"{exc.colno})"
            ) from None
        if holds_lone_surrogate(text[start:position], document):
            raise IngestError(f"{file} line {line}: expected text, found {LONE_SURROGATE}")
        yield line, document


def _resource(resource: dict[str, Any]) -> tuple[str, dict[str, str]]:
    attributes = _attributes((resource.get("resource") or {}).get("attributes"))
    service = attributes.pop("service.name", None) or UNKNOWN_SERVICE
    shared = {k: v for k, v in attributes.items() if not k.startswith("telemetry.sdk.")}
    return service, shared


def _scoped(resource: dict[str, Any], scopes: tuple[str, str], items: str) -> Iterator[dict]:
    for key in scopes:
        for scope in resource.get(key) or []:
            yield from scope.get(items) or []


def _log_rows(resource: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    service, shared = _resource(resource)
    for record in _scoped(resource, ("scopeLogs", "instrumentationLibraryLogs"), "logRecords"):
        micros = _micros(record.get("timeUnixNano")) or _micros(record.get("observedTimeUnixNano"))
        if micros is None:
            raise IngestError(
                f"{where}: expected timeUnixNano or observedTimeUnixNano on every log record, "
                "found a record with neither"
            )
        yield {
            "ts": micros,
            "service": service,
            "level": _level(record),
            "message": _text(record.get("body")) or "",
            "trace_id": _hex_id(record.get("traceId")),
            "span_id": _hex_id(record.get("spanId")),
            "attributes": list({**shared, **_attributes(record.get("attributes"))}.items()),
        }


def _metric_rows(resource: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    service, shared = _resource(resource)
    for metric in _scoped(resource, ("scopeMetrics", "instrumentationLibraryMetrics"), "metrics"):
        name = metric.get("name") or ""
        for point, suffix, value, extra in _samples(metric):
            micros = _micros(point.get("timeUnixNano"))
            if micros is None:
                raise IngestError(
                    f"{where}: expected timeUnixNano on every data point of metric {name!r}, "
                    "found a point without it"
                )
            labels = {**shared, **_attributes(point.get("attributes")), **extra}
            yield {"ts": micros, "name": name + suffix, "service": service, "value": value,
                   "labels": list(labels.items())}  # fmt: skip


def _samples(metric: dict[str, Any]) -> Iterator[tuple[dict, str, float, dict[str, str]]]:
    """(data point, name suffix, value, extra labels) for each number a metric carries."""
    for kind in ("gauge", "sum"):
        for point in (metric.get(kind) or {}).get("dataPoints") or []:
            for field in ("asDouble", "asInt"):
                if point.get(field) is not None:
                    yield point, "", float(point[field]), {}
                    break
    for kind in ("histogram", "exponentialHistogram", "summary"):
        for point in (metric.get(kind) or {}).get("dataPoints") or []:
            yield point, "_count", float(point.get("count") or 0), {}
            if point.get("sum") is not None:
                yield point, "_sum", float(point["sum"]), {}
            for quantile in point.get("quantileValues") or []:
                label = {"quantile": str(float(quantile.get("quantile") or 0))}
                yield point, "", float(quantile.get("value") or 0), label


def _span_rows(resource: dict[str, Any], where: str) -> Iterator[dict[str, Any]]:
    service, shared = _resource(resource)
    for span in _scoped(resource, ("scopeSpans", "instrumentationLibrarySpans"), "spans"):
        start = _micros(span.get("startTimeUnixNano"))
        if start is None:
            raise IngestError(
                f"{where}: expected startTimeUnixNano on every span, found span "
                f"{span.get('name')!r} without it"
            )
        start_nanos = int(span["startTimeUnixNano"])
        end_nanos = int(span.get("endTimeUnixNano") or start_nanos)
        status = span.get("status") or {}
        attributes = {**shared, **_attributes(span.get("attributes"))}
        if status.get("message"):
            attributes["otel.status_description"] = status["message"]
        kind = _enum_name(span.get("kind"), "SPAN_KIND_", SPAN_KINDS)
        if kind and kind != "unspecified":
            attributes["span.kind"] = kind
        yield {
            "trace_id": _hex_id(span.get("traceId")),
            "span_id": _hex_id(span.get("spanId")),
            "parent_span_id": _hex_id(span.get("parentSpanId")),
            "service": service,
            "name": span.get("name") or "",
            "start_ts": start,
            "duration_ms": (end_nanos - start_nanos) / 1e6,
            "status": "error" if status.get("code") in (2, "2", "STATUS_CODE_ERROR") else "ok",
            "attributes": list(attributes.items()),
        }


PARSERS: dict[str, Callable[[dict[str, Any], str], Iterator[dict[str, Any]]]] = {
    "logs": _log_rows,
    "metrics": _metric_rows,
    "spans": _span_rows,
}
KEYS = {"logs": "resourceLogs", "metrics": "resourceMetrics", "spans": "resourceSpans"}


def _level(record: dict[str, Any]) -> str:
    text = (record.get("severityText") or "").strip().lower()
    if text:
        return text
    number = record.get("severityNumber")
    if isinstance(number, str) and number.startswith("SEVERITY_NUMBER_"):
        return re.sub(r"\d+$", "", number.removeprefix("SEVERITY_NUMBER_").lower())
    if isinstance(number, int) and 1 <= number <= 24:
        return SEVERITY_BANDS[(number - 1) // 4]
    return "unspecified"


def _enum_name(value: Any, prefix: str, names: tuple[str, ...]) -> str | None:
    if isinstance(value, str):
        return value.removeprefix(prefix).lower()
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return None


def _micros(nanos: Any) -> int | None:
    # Proto JSON writes 64-bit integers as strings; "0" means unset.
    if nanos in (None, "", 0, "0"):
        return None
    return int(nanos) // 1000


def _hex_id(value: Any) -> str | None:
    return value.lower() if value else None


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, str]:
    attributes = {}
    for item in items or []:
        text = _text(item.get("value"))
        if text is not None:
            attributes[str(item.get("key"))] = text
    return attributes


def _text(value: dict[str, Any] | None) -> str | None:
    """An AnyValue as text: strings as they are, arrays and key-value lists as JSON."""
    plain = _plain(value)
    if plain is None or isinstance(plain, str):
        return plain
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, (int, float)):
        return str(plain)
    return json.dumps(plain)


def _plain(value: dict[str, Any] | None) -> Any:
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_plain(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        pairs = (value["kvlistValue"] or {}).get("values") or []
        return {str(p.get("key")): _plain(p.get("value")) for p in pairs}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None
