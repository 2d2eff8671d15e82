"""OTLP/JSON lines: the OpenTelemetry collector's file format, which `casebook ingest` reads."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class JsonLines:
    """One OTLP/JSON document per line, appended; safe from several exporter threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, message: Any) -> None:
        document = MessageToDict(message, use_integers_for_enums=True)
        _hex_ids(document)
        line = json.dumps(document, separators=(",", ":"))
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


class SpanFile(SpanExporter):
    """Spans to OTLP/JSON lines."""

    def __init__(self, lines: JsonLines) -> None:
        self.lines = lines

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.lines.write(encode_spans(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class MetricFile(MetricExporter):
    """Metrics to OTLP/JSON lines."""

    def __init__(self, lines: JsonLines) -> None:
        super().__init__()
        self.lines = lines

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.lines.write(encode_metrics(metrics_data))
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _hex_ids(value: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex, where protobuf's JSON writes base64."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ID_FIELDS and isinstance(item, str):
                value[key] = base64.b64decode(item).hex()
            else:
                _hex_ids(item)
    elif isinstance(value, list):
        for item in value:
            _hex_ids(item)
