"""Pull at alert time: snapshot PromQL queries over the investigation window into `metrics`.

For teams that keep their metrics in Prometheus: before the analyzers run, every query of every
configured source is run with `query_range` over the window and the series are added to the
store. A source that fails is a note in the report, never a failed investigation.

Steps are aligned to multiples of `step_s`, and samples the store already holds (same time,
name, service and labels) are not added again, so investigations whose windows overlap pull
the same series without doubling it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import pyarrow as pa
from pydantic import BaseModel

from casebook.executor.ingest.otlp_rows import COLUMNS
from casebook.executor.sources import PrometheusSource, SourceQuery
from casebook.executor.telemetry_store import TelemetryStore, conform
from casebook.executor.telemetry_store.conformance import arrow_table
from casebook.sdk.models import TimeWindow

MAX_POINTS = 11_000  # Prometheus refuses a query_range of more points per series
SOURCE_LABEL = "casebook_source"
NEW_ROWS_SQL = """
select p.* from pulled p
where not exists (
    select 1 from raw.metrics m
    where m.ts = p.ts and m.name = p.name and m.service = p.service and m.labels = p.labels)"""


class SourceRecord(BaseModel):
    """What one source gave an investigation."""

    name: str
    ok: bool
    duration_ms: float
    rows: int = 0
    error: str | None = None


def pull_sources(
    sources: Sequence[PrometheusSource],
    window: TimeWindow,
    store: TelemetryStore,
    now: datetime | None = None,
) -> list[SourceRecord]:
    """Run every source's queries over the window, add the series to `store`, say how it went."""
    now = now or datetime.now(UTC)
    return [_pull(source, window, store, now) for source in sources]


def _pull(source: PrometheusSource, window: TimeWindow, store: TelemetryStore,
          now: datetime) -> SourceRecord:
    started = time.monotonic()
    tables, problems = [], []
    headers = {"Authorization": f"Bearer {source.bearer_token}"} if source.bearer_token else {}
    try:
        with httpx.Client(base_url=source.url.rstrip("/"), headers=headers,
                          timeout=source.timeout_s) as client:
            for query in source.queries:
                try:
                    tables.append(_query(client, source, query, window, now))
                except (httpx.HTTPError, SourceError) as exc:
                    problems.append(f"query {query.query!r}: {_describe(exc)}")
        rows = _store(tables, store)
    except Exception as exc:  # a broken source must not sink the investigation
        problems.append(_describe(exc))
        rows = 0
    return SourceRecord(
        name=source.name, ok=not problems, rows=rows,
        duration_ms=round((time.monotonic() - started) * 1000, 3),
        error="; ".join(problems) or None,
    )


class SourceError(Exception):
    """Prometheus answered, but not with series."""


def _query(client: httpx.Client, source: PrometheusSource, query: SourceQuery,
           window: TimeWindow, now: datetime) -> pa.Table:
    step = source.step_s
    start = window.start.timestamp()
    end = min(window.end, now).timestamp()
    if end <= start:
        return _rows([])
    if (end - start) / step > MAX_POINTS:
        step = float(math.ceil((end - start) / MAX_POINTS))
    start = math.floor(start / step) * step  # one grid for every window
    answer = client.get("/api/v1/query_range", params={
        "query": query.query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    try:
        body = answer.json()
    except ValueError:
        raise SourceError(f"HTTP {answer.status_code}, not a Prometheus API answer: "
                          f"{answer.text[:200]!r}") from None
    if body.get("status") != "success":
        raise SourceError(f"HTTP {answer.status_code}, {body.get('errorType', 'error')}: "
                          f"{body.get('error', '')}")
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise SourceError(f"expected a range vector (matrix), found {data.get('resultType')}")
    rows = []
    for series in data.get("result") or []:
        labels = dict(series.get("metric") or {})
        name = query.name or labels.pop("__name__", None) or query.query
        labels.pop("__name__", None)
        service = labels.get(query.service_label) or labels.get("job") or "unknown_service"
        labels[SOURCE_LABEL] = source.name
        pairs = sorted(labels.items())
        for stamp, value in series.get("values") or []:
            rows.append((int(round(float(stamp) * 1_000_000)), name, service, float(value), pairs))
    return _rows(rows)


def _rows(rows: list[tuple]) -> pa.Table:
    kinds = COLUMNS["metrics"]
    return pa.table({column: pa.array([r[i] for r in rows], kinds[column])
                     for i, column in enumerate(kinds)})


def _store(tables: list[pa.Table], store: TelemetryStore) -> int:
    pulled = pa.concat_tables(tables) if tables else _rows([])
    if not pulled.num_rows:
        return 0
    batch = conform("metrics", pulled)
    with store.connect() as con:
        con.register("pulled", batch.data)
        new = arrow_table(con.sql(NEW_ROWS_SQL))
    if new.num_rows:
        store.append("metrics", new)
    return new.num_rows


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
