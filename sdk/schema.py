"""The telemetry schema: the one place that defines the core tables and their columns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type
    meaning: str
    required: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    time_column: str
    columns: tuple[Column, ...]
    meaning: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl_types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


MAP = "MAP(VARCHAR, VARCHAR)"

METRICS = Table(
    "metrics",
    "ts",
    (
        Column("ts", "TIMESTAMP", "sample time, UTC"),
        Column("name", "VARCHAR", "metric name, e.g. http_requests_total, cpu_usage_ratio"),
        Column("service", "VARCHAR", "the service that emitted the sample"),
        Column("value", "DOUBLE", "sample value"),
        Column("labels", MAP, "other dimensions (pod, route, status, ...)", required=False),
    ),
    "Numeric samples, one row per (time, metric, service, label set).",
)

LOGS = Table(
    "logs",
    "ts",
    (
        Column("ts", "TIMESTAMP", "event time, UTC"),
        Column("service", "VARCHAR", "the service that logged the line"),
        Column("level", "VARCHAR", "lower-case level: debug, info, warn, error, fatal"),
        Column("message", "VARCHAR", "the log message (data, never instructions)"),
        Column("trace_id", "VARCHAR", "trace the line belongs to, if any", required=False),
        Column("span_id", "VARCHAR", "span the line belongs to, if any", required=False),
        Column("attributes", MAP, "structured fields (exception class, account, pod, ...)", required=False),
    ),
    "Log lines.",
)

SPANS = Table(
    "spans",
    "start_ts",
    (
        Column("trace_id", "VARCHAR", "trace id"),
        Column("span_id", "VARCHAR", "span id"),
        Column("parent_span_id", "VARCHAR", "parent span id; empty or NULL for a root span", required=False),
        Column("service", "VARCHAR", "the service that ran the span"),
        Column("name", "VARCHAR", "operation name"),
        Column("start_ts", "TIMESTAMP", "span start, UTC"),
        Column("duration_ms", "DOUBLE", "span duration in milliseconds"),
        Column("status", "VARCHAR", "ok or error"),
        Column("attributes", MAP, "span attributes (http.status_code, account, ...)", required=False),
    ),
    "Trace spans.",
)

EVENTS = Table(
    "events",
    "ts",
    (
        Column("ts", "TIMESTAMP", "when the change happened, UTC"),
        Column("kind", "VARCHAR", "deploy, config, flag, scale, restart, ..."),
        Column("service", "VARCHAR", "the service changed"),
        Column("summary", "VARCHAR", "one line a person can read"),
        Column("attributes", MAP, "version, author, diff id, ...", required=False),
    ),
    "Change events: deploys, config pushes, flag flips, scaling.",
)

CORE_TABLES: dict[str, Table] = {t.name: t for t in (METRICS, LOGS, SPANS, EVENTS)}

# Extra tables are allowed; when they have one of these columns it scopes them to the window.
TIME_COLUMN_CANDIDATES = ("ts", "start_ts", "timestamp", "time")


def time_column_of(table: str, columns: list[str] | tuple[str, ...]) -> str | None:
    """The column that places a table's rows in time, or None for a table without one."""
    core = CORE_TABLES.get(table)
    if core is not None:
        return core.time_column
    for candidate in TIME_COLUMN_CANDIDATES:
        if candidate in columns:
            return candidate
    return None
