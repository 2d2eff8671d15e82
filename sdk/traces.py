"""Trace analysis: which service's spans start the errors and which add the latency.

An error span whose children all succeeded is where an error originates; error spans above it
only pass it on. A span's self time is its duration minus the time its children cover, so a
slow dependency is blamed on the dependency, not on every caller waiting for it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from casebook.sdk.series import to_epoch

ERROR_STATUSES = frozenset({"error", "err", "failed", "failure", "2", "status_code_error"})


@dataclass(frozen=True)
class ServiceSpans:
    """One service's share of the errors and of the latency in a set of spans."""

    service: str
    spans: int
    errors: int  # error spans, passed on or not
    origin_errors: int  # error spans none of whose children failed: where errors start
    origin_rate: float  # origin errors per trace
    baseline_origin_rate: float | None
    self_ms: float  # self time per trace, in milliseconds
    baseline_self_ms: float | None
    added_ms: float | None  # self_ms - baseline_self_ms
    origin_operations: dict[str, int] = field(hash=False)  # operation -> origin errors


@dataclass(frozen=True)
class TraceAnalysis:
    """Per-service errors and latency, and the services that best explain each."""

    services: tuple[ServiceSpans, ...]  # most origin errors (or most added time) first
    error_origin: ServiceSpans | None  # the largest increase in origin errors per trace
    latency_origin: ServiceSpans | None  # the largest added self time per trace
    traces: int
    baseline_traces: int

    def service(self, name: str) -> ServiceSpans | None:
        """One service's numbers, None if it has no spans."""
        return next((s for s in self.services if s.service == name), None)


@dataclass
class _Span:
    trace: str
    span: str
    parent: str
    service: str
    name: str
    duration: float
    start: float | None
    error: bool
    children: list[_Span] = field(default_factory=list)


@dataclass
class _Totals:
    traces: int
    spans: Counter[str]
    errors: Counter[str]
    origins: Counter[str]
    self_ms: defaultdict[str, float]
    operations: defaultdict[str, Counter[str]]


def analyze_spans(spans: Any, baseline: Any = None) -> TraceAnalysis:
    """Attribute errors to the services where they originate and latency to its self time.

    `spans` (and the optional `baseline` spans from a normal period) are query rows with
    trace_id, span_id, parent_span_id, service, name, duration_ms and status (ok/error);
    start_ts, when present, lets parallel children overlap correctly.

    >>> rows = [
    ...     {"trace_id": "t", "span_id": "a", "parent_span_id": "", "service": "web",
    ...      "name": "GET /", "duration_ms": 120, "status": "error"},
    ...     {"trace_id": "t", "span_id": "b", "parent_span_id": "a", "service": "db",
    ...      "name": "query", "duration_ms": 100, "status": "error"},
    ... ]
    >>> analysis = analyze_spans(rows)
    >>> analysis.error_origin.service, analysis.latency_origin.service
    ('db', 'db')
    """
    now = _totals(_spans(spans, "spans"))
    before = _totals(_spans(baseline, "baseline")) if baseline is not None else None
    services = []
    for service in sorted(now.spans):
        rate = now.origins[service] / max(now.traces, 1)
        self_ms = now.self_ms[service] / max(now.traces, 1)
        base_rate = base_self = None
        if before is not None:
            base_rate = before.origins[service] / max(before.traces, 1)
            base_self = before.self_ms[service] / max(before.traces, 1)
        services.append(
            ServiceSpans(
                service=service,
                spans=now.spans[service],
                errors=now.errors[service],
                origin_errors=now.origins[service],
                origin_rate=rate,
                baseline_origin_rate=base_rate,
                self_ms=self_ms,
                baseline_self_ms=base_self,
                added_ms=None if base_self is None else self_ms - base_self,
                origin_operations=dict(now.operations[service].most_common(5)),
            )
        )

    def error_excess(s: ServiceSpans) -> float:
        return s.origin_rate - (s.baseline_origin_rate or 0.0)

    def added_time(s: ServiceSpans) -> float:
        return s.added_ms if s.added_ms is not None else s.self_ms

    services.sort(key=lambda s: (-error_excess(s), -added_time(s), s.service))
    erring = [s for s in services if error_excess(s) > 0]
    slower = [s for s in services if added_time(s) > 0]
    return TraceAnalysis(
        services=tuple(services),
        error_origin=max(erring, key=error_excess) if erring else None,
        latency_origin=max(slower, key=added_time) if slower else None,
        traces=now.traces,
        baseline_traces=before.traces if before is not None else 0,
    )


def _spans(rows: Any, label: str) -> list[_Span]:
    rows = list(rows.dicts()) if hasattr(rows, "dicts") else list(rows)
    needed = ("trace_id", "span_id", "service", "duration_ms")
    out = []
    for row in rows:
        missing = [c for c in needed if c not in row]
        if missing:
            raise ValueError(
                f"analyze_spans: a row of {label} has no {', '.join(missing)}; its columns "
                f"are {', '.join(map(str, row))}. Select trace_id, span_id, parent_span_id, "
                "service, name, duration_ms, status from spans"
            )
        start = row.get("start_ts")
        out.append(
            _Span(
                trace=str(row["trace_id"]),
                span=str(row["span_id"]),
                parent=str(row.get("parent_span_id") or ""),
                service=str(row["service"]),
                name=str(row.get("name") or ""),
                duration=max(float(row["duration_ms"] or 0.0), 0.0),
                start=None if start is None else to_epoch(start) * 1000.0,
                error=str(row.get("status") or "").strip().lower() in ERROR_STATUSES,
            )
        )
    return out


def _totals(spans: list[_Span]) -> _Totals:
    by_id = {(s.trace, s.span): s for s in spans}
    for span in spans:
        parent = by_id.get((span.trace, span.parent))
        if parent is not None and parent is not span:
            parent.children.append(span)
    totals = _Totals(
        traces=len({s.trace for s in spans}),
        spans=Counter(),
        errors=Counter(),
        origins=Counter(),
        self_ms=defaultdict(float),
        operations=defaultdict(Counter),
    )
    for span in spans:
        totals.spans[span.service] += 1
        totals.self_ms[span.service] += _self_time(span)
        if span.error:
            totals.errors[span.service] += 1
            if not any(child.error for child in span.children):
                totals.origins[span.service] += 1
                totals.operations[span.service][span.name] += 1
    return totals


def _self_time(span: _Span) -> float:
    """Duration not covered by children (their union, within the span, when starts are known)."""
    if not span.children:
        return span.duration
    starts = [child.start for child in span.children]
    if span.start is None or None in starts:
        return max(span.duration - sum(child.duration for child in span.children), 0.0)
    begin, end = span.start, span.start + span.duration
    intervals = sorted(
        (max(start, begin), min(start + child.duration, end))
        for start, child in zip(starts, span.children, strict=True)
        if start is not None
    )
    covered, reach = 0.0, begin
    for low, high in intervals:
        low = max(low, reach)
        if high > low:
            covered += high - low
            reach = high
    return max(span.duration - covered, 0.0)
