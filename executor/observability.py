"""OpenTelemetry for investigations: spans investigation -> wave -> batch -> invocation, and metrics.

Off unless asked for, with `configure(...)` or the environment variable CASEBOOK_OTEL:

    CASEBOOK_OTEL=console      spans and metrics as JSON on stderr
    CASEBOOK_OTEL=otlp         to an OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT says where)
    CASEBOOK_OTEL=runs.jsonl   OTLP/JSON lines, the collector's file format, which
                               `casebook ingest runs.jsonl --telemetry STORE` loads into the
                               `spans` and `metrics` tables under the service `casebook`

Each invocation is a span named after its analyzer with its status, rows read, queries and
duration, so an analyzer over the `spans` table can find casebook's own slow or failing
analyzers (docs/scale.md). OpenTelemetry is imported only when export is on.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from casebook.executor.record import InvestigationRecord
from casebook.sdk.invocation import Outcome

ENVIRONMENT = "CASEBOOK_OTEL"
SERVICE = "casebook"
FAILED = ("error", "timeout", "crashed", "oom")

_lock = threading.Lock()
_chosen: str | None = None
_exports: dict[str, Export] = {}


def configure(target: str | None) -> None:
    """Export to "console", "otlp" or a file path from now on; None follows CASEBOOK_OTEL."""
    global _chosen
    _chosen = target


def current_export() -> Export | None:
    """The export in force (one per target per process), or None when export is off."""
    target = _chosen or os.environ.get(ENVIRONMENT, "").strip()
    if not target or target.lower() in ("none", "off"):
        return None
    with _lock:
        if target not in _exports:
            _exports[target] = Export(target)
        return _exports[target]


def trace_investigation(record: InvestigationRecord, runtime: Any) -> InvestigationTrace | None:
    """A trace for this investigation, or None when export is off."""
    export = current_export()
    return None if export is None else InvestigationTrace(export, record, runtime)


class Export:
    """Providers, exporters and instruments for one target."""

    def __init__(self, target: str) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        spans, metrics = _exporters(target)
        resource = Resource.create({"service.name": SERVICE})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(spans))
        # Metrics leave at the end of each investigation (force_flush), not on a timer.
        reader = PeriodicExportingMetricReader(metrics, export_interval_millis=3_600_000)
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=False
        )
        self.tracer = self.tracer_provider.get_tracer("casebook.executor")
        meter = self.meter_provider.get_meter("casebook.executor")
        self.invocations = meter.create_counter(
            "casebook.invocations", unit="{invocation}", description="invocations by status"
        )
        self.duration = meter.create_histogram(
            "casebook.invocation.duration", unit="ms", description="time one invocation ran"
        )
        self.rows = meter.create_counter(
            "casebook.rows_read", unit="{row}", description="rows analyzers read"
        )
        self.investigations = meter.create_counter(
            "casebook.investigations", unit="{investigation}", description="by status"
        )
        self.investigation_duration = meter.create_histogram(
            "casebook.investigation.duration", unit="s", description="wall time, end to end"
        )

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()


class InvestigationTrace:
    """Spans for one investigation, made as outcomes arrive, with the times they happened."""

    def __init__(self, export: Export, record: InvestigationRecord, runtime: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.export = export
        self.record = record
        self.span = export.tracer.start_span(
            f"investigate {record.alert.name}",
            start_time=_ns(record.created_at),
            attributes={
                "casebook.investigation_id": record.id,
                "casebook.alert": record.alert.name,
                "casebook.runtime": record.runtime,
            },
        )
        self.context = trace.set_span_in_context(self.span)
        self.waves: dict[int, Any] = {}
        self.wave_ends: dict[int, int] = {}
        self.wave_counts: dict[int, int] = {}
        self.batch_of: dict[str, Any] = {}
        self.traced: set[str] = set()
        self.runtime = runtime
        self._previous_hook = getattr(runtime, "on_batch", None)
        if hasattr(runtime, "on_batch"):
            runtime.on_batch = self.batch

    def submitted(self, tasks: list[Any]) -> None:
        """Tasks handed to the runtime: their wave has begun."""
        for task in tasks:
            self._wave(task.wave)

    def _wave(self, wave: int, start_ns: int | None = None) -> Any:
        span = self.waves.get(wave)
        if span is None:
            span = self.export.tracer.start_span(
                f"wave {wave}",
                context=self.context,
                start_time=start_ns or time.time_ns(),
                attributes={"casebook.wave": wave},
            )
            self.waves[wave] = span
        return span

    def batch(self, batch: Any, seconds: float, status: str) -> None:
        """A batch came back from a worker (or was lost with it)."""
        if self._previous_hook is not None:
            self._previous_hook(batch, seconds, status)
        if not batch.tasks:
            return
        from opentelemetry.trace import Status, StatusCode

        now = time.time_ns()
        wave = self._wave(batch.tasks[0].wave)
        attributes = {
            "casebook.worker": batch.slot.index,
            "casebook.batch_size": len(batch.tasks),
            "casebook.batch_status": status,
            "casebook.alone": batch.alone,
        }
        pool = getattr(self.runtime, "pool", None)
        where = pool.whereabouts(batch.slot) if pool is not None else None
        if where is not None:  # which process on which Ray node ran it
            attributes["casebook.worker_pid"] = where["pid"]
            attributes["casebook.node_id"] = where["node_id"]
            attributes["casebook.node_ip"] = where["node_ip"]
        span = self.export.tracer.start_span(
            "batch",
            context=self._trace.set_span_in_context(wave),
            start_time=now - int(seconds * 1e9),
            attributes=attributes,
        )
        if status != "ok":
            span.set_status(Status(StatusCode.ERROR, f"batch {status}"))
        span.end(end_time=now)
        context = self._trace.set_span_in_context(span)
        for task in batch.tasks:
            self.batch_of[task.key] = context

    def finished(self, outcome: Outcome, node: Any) -> None:
        """One invocation's outcome: a span under its batch (or its wave), and metrics."""
        wave = node.wave if node is not None else 0
        start = _ns(outcome.started_at)
        context = self.batch_of.pop(outcome.key, None)
        if context is None:
            context = self._trace.set_span_in_context(self._wave(wave, start))
        attributes = {
            "casebook.analyzer": outcome.analyzer,
            "casebook.status": str(outcome.status),
            "casebook.invocation": outcome.key,
            "casebook.rows_read": outcome.rows_read,
            "casebook.queries": outcome.queries,
            "casebook.wave": wave,
            "casebook.depth": node.depth if node is not None else 0,
            "casebook.duration_ms": round(outcome.duration_ms, 3),
        }
        self._invocation(
            outcome.analyzer,
            context,
            start,
            outcome.duration_ms,
            attributes,
            str(outcome.status),
            outcome.error,
        )
        self.traced.add(outcome.key)
        self.wave_ends[wave] = max(
            self.wave_ends.get(wave, 0), start + int(outcome.duration_ms * 1e6)
        )
        self.wave_counts[wave] = self.wave_counts.get(wave, 0) + 1

    def _invocation(
        self,
        name: str,
        context: Any,
        start: int,
        duration_ms: float,
        attributes: dict[str, Any],
        status: str,
        error: str | None,
    ) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self.export.tracer.start_span(
            name, context=context, start_time=start, attributes=attributes
        )
        if status in FAILED:
            span.set_status(Status(StatusCode.ERROR, (error or status).splitlines()[0][:500]))
        span.end(end_time=start + int(duration_ms * 1e6))
        labels = {"analyzer": name, "status": status}
        self.export.invocations.add(1, labels)
        self.export.duration.record(duration_ms, {"analyzer": name})
        self.export.rows.add(int(attributes["casebook.rows_read"]), {"analyzer": name})

    def close(self, record: InvestigationRecord) -> None:
        """End the open spans (with what never ran through the runtime) and flush the export."""
        from opentelemetry.trace import Status, StatusCode

        for invocation in record.invocations:
            if invocation.key in self.traced:
                continue  # the rest were decided by the plan (skipped) or cut by the deadline
            start = _ns(record.created_at) + int(invocation.started_ms * 1e6)
            context = self._trace.set_span_in_context(self._wave(invocation.wave, start))
            attributes = {
                "casebook.analyzer": invocation.analyzer,
                "casebook.status": invocation.status,
                "casebook.invocation": invocation.key,
                "casebook.rows_read": invocation.rows_read,
                "casebook.queries": invocation.queries,
                "casebook.wave": invocation.wave,
                "casebook.depth": invocation.depth,
                "casebook.duration_ms": invocation.duration_ms,
            }
            self._invocation(
                invocation.analyzer,
                context,
                start,
                invocation.duration_ms,
                attributes,
                invocation.status,
                invocation.error,
            )
        end = _ns(record.finished_at) if record.finished_at else time.time_ns()
        for wave, span in sorted(self.waves.items()):
            span.set_attribute("casebook.invocations", self.wave_counts.get(wave, 0))
            span.end(end_time=min(max(self.wave_ends.get(wave, end), span.start_time), end))
        statuses: dict[str, int] = {}
        for invocation in record.invocations:
            statuses[invocation.status] = statuses.get(invocation.status, 0) + 1
        self.span.set_attributes(
            {
                "casebook.status": record.status,
                "casebook.invocations": len(record.invocations),
                "casebook.findings": len(record.findings),
                **{f"casebook.invocations.{k}": v for k, v in statuses.items()},
                "casebook.top_cause": (
                    f"{record.causes[0].entity.name} ({record.causes[0].category})"
                    if record.causes
                    else ""
                ),
            }
        )
        if record.status != "done":
            self.span.set_status(Status(StatusCode.ERROR, "; ".join(record.notes)[:500]))
        self.span.end(end_time=end)
        self.export.investigations.add(1, {"status": record.status})
        self.export.investigation_duration.record((end - _ns(record.created_at)) / 1e9)
        if hasattr(self.runtime, "on_batch"):
            self.runtime.on_batch = self._previous_hook
        self.export.flush()


class _Stderr:
    """Whatever sys.stderr is when a line is written (stdout stays for --json)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def _exporters(target: str) -> tuple[Any, Any]:
    kind = target.lower()
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=_Stderr()), ConsoleMetricExporter(out=_Stderr())
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), OTLPMetricExporter()
    path = Path(target).expanduser()
    if path.is_dir() or not path.parent.is_dir():
        found = "a folder" if path.is_dir() else f"no folder {path.parent}"
        raise ValueError(
            f"{ENVIRONMENT}={target}: expected console, otlp, or a file to write "
            f"OTLP/JSON lines to in an existing folder, found {found}"
        )
    from casebook.executor.otlp_file import JsonLines, MetricFile, SpanFile

    lines = JsonLines(path)
    return SpanFile(lines), MetricFile(lines)
