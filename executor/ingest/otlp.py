"""OpenTelemetry OTLP/JSON: the collector's file exporter output, or one pretty-printed document.

Each document is parsed into the OTLP protobuf messages (`opentelemetry-proto`) and turned into
rows by `otlp_rows`, the decoder the OTLP/HTTP receiver of `casebook serve` uses too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from google.protobuf.json_format import ParseDict, ParseError

from casebook.executor.ingest.files import (
    LONE_SURROGATE,
    IngestError,
    Loaded,
    head,
    holds_lone_surrogate,
    not_utf8,
    open_text,
)
from casebook.executor.ingest.otlp_rows import REQUESTS, request_rows

OTLP_START = re.compile(rb'^(\xef\xbb\xbf)?\s*\{\s*"(resourceLogs|resourceMetrics|resourceSpans)"')
# Byte lengths of OTLP ids: trace ids are 16 bytes, span ids 8.
ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
# Exports from before OTLP 0.15 name scopes "instrumentation library".
LEGACY_KEYS = {
    "instrumentationLibrarySpans": "scopeSpans",
    "instrumentationLibraryLogs": "scopeLogs",
    "instrumentationLibraryMetrics": "scopeMetrics",
    "instrumentationLibrary": "scope",
}


class OtlpJsonError(ValueError):
    """An OTLP/JSON document that does not parse; the message names the field."""


def is_otlp(path: Path) -> bool:
    """Whether the file starts like an OTLP/JSON export."""
    return bool(OTLP_START.match(head(path)))


def parse_otlp_json(document: Any, signal: str) -> Any:
    """One OTLP/JSON document as the export request of `signal` (spans, logs or metrics).

    OTLP/JSON writes trace and span ids as hex, where protobuf's own JSON mapping writes
    base64; both are accepted, and ids of the wrong length are refused.
    """
    key, message = REQUESTS[signal]
    if not isinstance(document, dict):
        raise OtlpJsonError(f"expected an OTLP/JSON object, found {type(document).__name__}")
    part = {key: _prepared(document.get(key) or [])}
    try:
        return ParseDict(part, message(), ignore_unknown_fields=True)
    except ParseError as exc:
        raise OtlpJsonError(f"expected OTLP/JSON as the collector writes it ({exc})") from None


def read_otlp(path: Path, file: str) -> list[Loaded]:
    """Rows for logs, metrics and spans from every OTLP/JSON document in the file."""
    tables: dict[str, list[pa.Table]] = defaultdict(list)
    lines: dict[str, list[int]] = defaultdict(list)
    for line, document in _documents(path, file):
        where = f"{file} line {line}"
        if not isinstance(document, dict):
            raise IngestError(f"{where}: expected an OTLP/JSON object, found a list")
        for signal, (key, _) in REQUESTS.items():
            if not document.get(key):
                continue
            try:
                rows = request_rows(parse_otlp_json(document, signal))
            except OtlpJsonError as exc:
                raise IngestError(f"{where}: {exc}") from None
            except RecursionError:
                raise IngestError(
                    f"{where}: expected OTLP/JSON, found values nested too deeply to read"
                ) from None
            if rows.problem:
                raise IngestError(f"{where}: {rows.problem}")
            tables[signal].append(rows.arrow())
            lines[signal].extend([line] * rows.count)
    loaded = []
    for table in ("logs", "metrics", "spans"):
        if not lines[table]:
            continue
        data = pa.concat_tables(tables[table])
        numbers = lines[table]
        loaded.append(Loaded(file, table, data, "otlp", lambda row, n=numbers: f"line {n[row]}"))
    return loaded


def _prepared(value: Any, key: str = "") -> Any:
    """A copy with legacy scope names renamed and ids in the base64 that ParseDict reads."""
    if isinstance(value, dict):
        return {LEGACY_KEYS.get(k, k): _prepared(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_prepared(v, key) for v in value]
    if key in ID_BYTES and isinstance(value, str):
        return base64.b64encode(id_bytes(value, key)).decode()
    return value


def id_bytes(text: str, field: str) -> bytes:
    """The bytes of a trace or span id written as hex (OTLP/JSON) or base64 (protobuf JSON)."""
    if not text:
        return b""
    size = ID_BYTES[field]
    if len(text) == 2 * size:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == size:
        return decoded
    raise OtlpJsonError(
        f"{field} {text[:64]!r} is not a {size}-byte id: expected {2 * size} hex digits "
        f"(OTLP/JSON) or base64 of {size} bytes"
    )


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
