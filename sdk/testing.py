"""The testing kit: a tiny in-memory store, an alert factory and the production run path.

    store = TinyStore()
    store.add("logs", [{"ts": t, "service": "api", "level": "error", "message": "boom"}])
    outcome = run(my_analyzer, alert=make_alert("HighErrorRate", service="api"), store=store)
    assert outcome.finding.title == "..."
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from casebook.sdk.analyzer import spec_of
from casebook.sdk.invocation import Outcome, resolve_params, run_invocation
from casebook.sdk.models import Alert, Entity, Finding, TimeWindow, utc
from casebook.sdk.postprocessor import (
    CauseView,
    FindingView,
    InvestigationView,
    PostprocessorOutcome,
    postprocessor_spec,
)
from casebook.sdk.postprocessor import run_postprocessor as _run_spec
from casebook.sdk.schema import CORE_TABLES, MAP
from casebook.sdk.telemetry import RAW_SCHEMA, Telemetry, TelemetrySource

DEFAULT_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_alert(name: str = "TestAlert", *, starts_at: datetime | None = None,
               annotations: Mapping[str, str] | None = None, **labels: str) -> Alert:
    """An alert for tests: `make_alert("HighErrorRate", service="api")`."""
    return Alert(name=name, labels=dict(labels), annotations=dict(annotations or {}),
                 starts_at=starts_at or DEFAULT_START)


class TinyStore:
    """An in-memory telemetry store with the production schema."""

    def __init__(self) -> None:
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(f"create schema {RAW_SCHEMA}")
        for table in CORE_TABLES.values():
            columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
            self.connection.execute(f"create table {RAW_SCHEMA}.{table.name} ({columns})")
        self._source: TelemetrySource | None = None

    def add(self, table: str, rows: Iterable[Mapping[str, Any]]) -> TinyStore:
        """Append rows (dicts) to a table; a new table's column types come from its first row."""
        records = [dict(r) for r in rows]
        if not records:
            return self
        if table in CORE_TABLES:
            self._insert_core(table, records)
        else:
            self._insert_extra(table, records)
        self._source = None
        return self

    def _insert_core(self, table: str, rows: list[dict[str, Any]]) -> None:
        spec = CORE_TABLES[table]
        unknown = set().union(*rows) - set(spec.column_names)
        if unknown:
            raise ValueError(f"table {table} has no column(s) {sorted(unknown)}; "
                             f"columns: {', '.join(spec.column_names)}")
        placeholders, values = [], []
        for column in spec.columns:
            if column.type == MAP:
                placeholders.append("map(?::varchar[], ?::varchar[])")
            else:
                placeholders.append(f"?::{column.type}")
        for row in rows:
            record: list[Any] = []
            for column in spec.columns:
                value = row.get(column.name)
                if column.type == MAP:
                    mapping = {str(k): str(v) for k, v in (value or {}).items()}
                    record += [list(mapping), list(mapping.values())]
                elif isinstance(value, datetime):
                    record.append(utc(value).replace(tzinfo=None))
                else:
                    record.append(value)
            values.append(record)
        self.connection.executemany(
            f"insert into {RAW_SCHEMA}.{table} values ({', '.join(placeholders)})", values
        )

    def _insert_extra(self, table: str, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        exists = self.connection.execute(
            "select count(*) from information_schema.tables where table_schema=? and table_name=?",
            [RAW_SCHEMA, table]).fetchone()
        if not exists or not exists[0]:
            types = ", ".join(f"{c} {_duck_type(rows[0][c])}" for c in columns)
            self.connection.execute(f"create table {RAW_SCHEMA}.{table} ({types})")
        marks = ", ".join("?" for _ in columns)
        self.connection.executemany(
            f"insert into {RAW_SCHEMA}.{table} ({', '.join(columns)}) values ({marks})",
            [[_naive(r.get(c)) for c in columns] for r in rows],
        )

    @property
    def source(self) -> TelemetrySource:
        if self._source is None:
            self._source = TelemetrySource(self.connection)
        return self._source

    def telemetry(self, window: TimeWindow) -> Telemetry:
        return self.source.open(window)


def _naive(value: Any) -> Any:
    return utc(value).replace(tzinfo=None) if isinstance(value, datetime) else value


def _duck_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    return "VARCHAR"


def span(trace_id: str, span_id: str, parent_span_id: str, service: str, name: str,
         start_ts: datetime, duration_ms: float, status: str = "ok",
         **attributes: str) -> dict[str, Any]:
    """One `spans` row: `span("t1", "b", "a", "api", "GET /items", ts, 20.0)`."""
    return {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_span_id,
            "service": service, "name": name, "start_ts": start_ts, "duration_ms": duration_ms,
            "status": status, "attributes": attributes}


def log(ts: datetime, service: str, level: str, message: str, trace_id: str | None = None,
        span_id: str | None = None, **attributes: str) -> dict[str, Any]:
    """One `logs` row: `log(ts, "api", "error", "boom", account="a1")`."""
    return {"ts": ts, "service": service, "level": level, "message": message,
            "trace_id": trace_id, "span_id": span_id, "attributes": attributes}


def default_window(alert: Alert, before: timedelta = timedelta(minutes=60),
                   after: timedelta = timedelta(minutes=15)) -> TimeWindow:
    """The investigation window the executor uses by default around an alert."""
    return TimeWindow.around(alert.starts_at, before, after)


def run(
    fn: Callable[..., Any],
    *,
    alert: Alert | None = None,
    store: TinyStore | None = None,
    params: Mapping[str, Any] | None = None,
    upstream: Mapping[str, Finding | None] | None = None,
    window: TimeWindow | None = None,
) -> Outcome:
    """Run one analyzer exactly as production does, with stubbed upstream findings."""
    spec = spec_of(fn)
    if spec is None:
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not decorated with @analyzer")
    alert = alert or make_alert()
    store = store or TinyStore()
    window = window or default_window(alert)
    values = resolve_params(spec, alert, dict(params or {}))
    return run_invocation(spec, values, alert=alert, window=window,
                          telemetry=store.telemetry(window), upstream=dict(upstream or {}))


def make_investigation(
    alert: Alert | None = None,
    *,
    causes: Iterable[tuple[str, str] | tuple[str, str, list[str]]] = (),
    findings: Iterable[Mapping[str, Any]] = (),
    investigation_id: str = "inv-test",
    report_url: str = "http://casebook.test/investigations/inv-test",
    headline: str = "",
) -> InvestigationView:
    """A ranked investigation by hand: `causes` as ("service:kv-cache", "cache") pairs (or with
    a third item, the supporting finding ids), ranked in order; `findings` as dicts of
    FindingView fields (analyzer and title are enough; ids default to f1, f2, ...)."""
    ranked = []
    for rank, (entity, category, *supported) in enumerate(causes, start=1):
        kind, _, name = entity.partition(":") if ":" in entity else ("service", "", entity)
        ranked.append(CauseView(rank=rank, entity=Entity(kind=kind, name=name),
                                category=category, score=round(1.0 - rank / 10, 2),
                                finding_ids=tuple(supported[0]) if supported else ()))
    made = []
    for i, given in enumerate(findings, start=1):
        fields: dict[str, Any] = {"id": f"f{i}", "summary": "", "severity": "warning",
                                  "confidence": 0.5, "category": "other", **given}
        fields.setdefault("title", fields["analyzer"])
        made.append(FindingView.model_validate(fields))
    return InvestigationView(id=investigation_id, alert=alert or make_alert(),
                             causes=tuple(ranked), findings=tuple(made), headline=headline,
                             report_url=report_url)


def run_postprocessor(fn: Callable[..., Any],
                      investigation: InvestigationView) -> PostprocessorOutcome:
    """Run one post-processor exactly as production does: matchers, timeout, checked actions."""
    spec = postprocessor_spec(fn)
    if spec is None:
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not decorated with @postprocessor")
    return _run_spec(spec, investigation)
