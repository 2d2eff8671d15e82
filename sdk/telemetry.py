"""Telemetry: the read-only, window-scoped query handle analyzers receive.

Read-only by construction: analyzers get no DuckDB connection, only `sql()`, which takes one
SELECT; and before the first handle is opened, the database is sealed
(`enable_external_access=false`, then `lock_configuration=true`), so a SELECT reads the store's
files and nothing else (`read_csv('/etc/passwd')` is refused), COPY, ATTACH, INSTALL, LOAD and
SET are refused, and no setting can be changed back.
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from casebook.sdk.models import Evidence, TimeWindow, utc

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT}


class TelemetryError(Exception):
    """A query an analyzer sent was refused or failed."""


class QueryMemoryError(MemoryError):
    """A query went past DuckDB's memory limit for the worker (the invocation ends `oom`)."""


@dataclass
class QueryResult:
    """Rows returned by a query, with the query kept for evidence."""

    query: str
    params: list[Any]
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # `by()`'s indexes by column name, and `Telemetry.metric_services()`'s dict.
    _indexes: dict[Any, dict[Any, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        try:
            index = self.columns.index(name)
        except ValueError:
            raise TelemetryError(
                f"no column {name!r} in the result; columns are {', '.join(self.columns)}"
            ) from None
        return [row[index] for row in self.rows]

    def scalar(self) -> Any:
        """The first value of the first row, or None for an empty result."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def by(self, key: str) -> dict[Any, dict[str, Any]]:
        """Rows keyed by one column (the last row wins for a repeated key).

        The index is built once per result and key: a shared result answers every fan-out
        invocation from it, so treat it as read-only.
        """
        cached = self._indexes.get(key)
        if cached is None:
            index = self.columns.index(key)
            cached = {row[index]: dict(zip(self.columns, row, strict=True)) for row in self.rows}
            self._indexes[key] = cached
        return cached

    def evidence(self, limit: int = 20, note: str = "") -> Evidence:
        """This result as finding evidence: the query, its parameters and a bounded sample."""
        return Evidence(
            query=self.query.strip(),
            params=[_plain(p) for p in self.params],
            columns=list(self.columns),
            rows=[[_plain(v) for v in row] for row in self.rows[:limit]],
            note=note,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


METRIC_CATALOG_SQL = "select name, service from metrics group by name, service"
_CATALOG = ("metric_services",)  # where a catalog result keeps its dict (not a column name)


def service_order(service: str | None) -> tuple[bool, str]:
    """Sort key for service names: by name, a row without a service (None) last."""
    return service is None, service or ""

Sharer = Callable[[str, list[Any], threading.Event], "QueryResult | None"]


@dataclass
class QueryStats:
    queries: int = 0
    rows: int = 0


@dataclass
class Telemetry:
    """Read-only access to the telemetry of one investigation window.

    Table names in SQL (metrics, logs, spans, events and any extra table) resolve to views
    limited to the window. Parameters bind with `?` (never format values into SQL).

    >>> telemetry.sql("select count(*) from logs where service = ?", ["checkout"]).scalar()
    """

    _cursor: duckdb.DuckDBPyConnection = field(repr=False)
    window: TimeWindow
    schema: str
    tables: tuple[str, ...]
    opener: Any = None  # callable(window) -> Telemetry, for baseline periods
    stats: QueryStats = field(default_factory=QueryStats)
    _shared: dict[tuple[str, tuple[Any, ...]], QueryResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The executor may answer shared queries from elsewhere (one scan per investigation, not
    # per process): sharer(query, params, interrupted) -> result, or None to run it here.
    sharer: Sharer | None = field(default=None, repr=False)
    # Answers kept by the executor for a connection pinned to unchanging data (see
    # `TelemetrySource.answers`); None runs every query.
    answers: Any = field(default=None, repr=False)
    _interrupted: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def connection(self) -> Any:
        """Not available: analyzers read through `sql()` and `shared()` only."""
        raise TelemetryError(
            "telemetry is read-only and hands out no database connection; query it with "
            "telemetry.sql('select ...', [params]) or telemetry.shared(...)"
        )

    def interrupt(self) -> None:
        """Stop the query running on this handle (the executor's timeout watchdog calls it)."""
        self._interrupted.set()
        self._cursor.interrupt()

    def close(self) -> None:
        """Release the handle's cursor (the executor calls it when the window is done)."""
        self._cursor.close()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> QueryResult:
        """Run one read-only SELECT over the window and return its rows."""
        params = list(params or [])
        self._check_read_only(query)
        scope = (self.schema, self.window.start, self.window.end)
        key = self.answers.key(scope, query, params) if self.answers is not None else None
        if key is not None and (known := self.answers.get(key, query, params)) is not None:
            self.stats.queries += 1
            self.stats.rows += len(known.rows)
            return known
        try:
            cursor = self._cursor.execute(query, params)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        except duckdb.InterruptException as exc:
            raise TimeoutError("query interrupted: the invocation ran past its timeout") from exc
        except duckdb.OutOfMemoryException as exc:
            raise QueryMemoryError(f"the query ran out of memory: {exc}") from exc
        except duckdb.PermissionException as exc:
            raise TelemetryError(
                f"query refused: telemetry reads only the store's tables ({exc}); query the "
                f"tables {', '.join(self.tables) or '(none)'} by name"
            ) from exc
        except duckdb.Error as exc:
            raise TelemetryError(f"query failed: {exc}\n  query: {' '.join(query.split())}") from exc
        self.stats.queries += 1
        self.stats.rows += len(rows)
        result = QueryResult(query, params, columns, rows)
        if key is not None:
            self.answers.put(key, result)
        return result

    def shared(self, query: str, params: Sequence[Any] | None = None) -> QueryResult:
        """Run a query once per investigation; later calls reuse the result.

        This is how a fan-out analyzer answers all its entities from one grouped scan:
        every invocation asks the same GROUP BY and picks its own row with `.by(key)`.
        """
        key = (" ".join(query.split()), tuple(params or ()))
        with self._lock:
            cached = self._shared.get(key)
        if cached is not None:
            return cached
        result = self._shared_elsewhere(query, list(params or []))
        if result is None:
            result = self.sql(query, params)
        with self._lock:
            self._shared.setdefault(key, result)
        return result

    def _shared_elsewhere(self, query: str, params: list[Any]) -> QueryResult | None:
        if self.sharer is None:
            return None
        self._check_read_only(query)  # refused here, before it travels
        self._interrupted.clear()
        result = self.sharer(query, params, self._interrupted)
        if result is not None:
            self.stats.queries += 1
            self.stats.rows += len(result.rows)
        return result

    def has_table(self, name: str) -> bool:
        return name in self.tables

    def metric_services(self) -> dict[str, list[str]]:
        """Which services report each metric in this window: `{name: [service, ...]}`.

        One grouped query per window, shared like `shared()` by every analyzer of the
        investigation, so fan-out sources and checks that ask "who reports this metric?" or
        "which metrics are there?" cost no scan of their own. Services are sorted (a row
        without a service last, as None); treat the result as read-only.

        >>> telemetry.metric_services().get("cache_hit_ratio", [])
        """
        if "metrics" not in self.tables:
            return {}
        result = self.shared(METRIC_CATALOG_SQL)
        catalog = result._indexes.get(_CATALOG)
        if catalog is None:
            found: dict[str, list[str]] = {}
            for name, service in result.rows:
                if name is not None:
                    found.setdefault(name, []).append(service)
            for services in found.values():
                services.sort(key=service_order)
            catalog = result._indexes[_CATALOG] = found
        return catalog

    def services_reporting(self, pattern: str) -> list[str]:
        """The services that report any metric whose name matches `pattern` (a regular
        expression, searched), sorted as `metric_services()` sorts them."""
        matches = re.compile(pattern).search
        return sorted({s for name, services in self.metric_services().items() if matches(name)
                       for s in services}, key=service_order)

    def missing(self, needs: Iterable[Any]) -> list[str]:
        """Which declared needs (`DataNeed`s) this window cannot meet, described for people.

        Keys inside maps (labels, attributes) are not checked; metric names may be patterns.
        """
        absent: list[str] = []
        for need in needs:
            if not need.checkable:
                continue
            if need.table not in self.tables:
                absent.append(f"table {need.table!r}")
            elif need.name and need.table == "metrics":
                if not fnmatch.filter(list(self.metric_services()), need.name):
                    absent.append(f"metric {need.name!r}")
            elif need.column:
                column = need.column.split(".", 1)[0]
                columns = self.shared(f'select * from "{need.table}" limit 0').columns
                if column not in columns:
                    absent.append(f"column {need.table}.{column}")
        return absent

    def between(self, start: datetime, end: datetime) -> Telemetry:
        """A handle on another period, e.g. a baseline before the incident."""
        return self.during(TimeWindow(start=start, end=end))

    def during(self, window: TimeWindow) -> Telemetry:
        if self.opener is None:
            raise TelemetryError("this telemetry handle cannot open other periods")
        return self.opener(window)

    def baseline(self, length: Any = None) -> Telemetry:
        """The period just before the window (same length unless given)."""
        return self.during(self.window.before(length))

    def _check_read_only(self, query: str) -> None:
        try:
            statements = self._cursor.extract_statements(query)
        except duckdb.Error as exc:
            raise TelemetryError(f"query does not parse: {exc}") from exc
        if len(statements) != 1:
            raise TelemetryError(
                f"send one statement per call, got {len(statements)}; split the query"
            )
        kind = statements[0].type
        if kind not in ALLOWED_STATEMENTS:
            raise TelemetryError(
                f"telemetry is read-only: a {kind.name} statement was refused; analyzers may "
                "only SELECT"
            )


RAW_SCHEMA = "raw"


class TelemetrySource:
    """A DuckDB database whose schema `raw` holds the telemetry tables (or views over files).

    It opens window-scoped `Telemetry` handles: each window gets its own schema of views,
    created once and reused by every invocation that reads the same window.
    """

    def __init__(
        self, connection: duckdb.DuckDBPyConnection, readable: Sequence[str] = ()
    ) -> None:
        self.connection = connection
        self.readable = tuple(readable)  # directories whose files the views read
        self.sealed = False
        # Set by the executor when the connection reads files that never change (a store
        # snapshot): a cache of query answers (`get`/`put`/`key`), shared by its handles.
        self.answers: Any = None
        connection.execute("set TimeZone = 'UTC'")
        self._windows: dict[tuple[datetime, datetime], str] = {}
        # Each table's time column, read once: a window's views need them all, and asking
        # DuckDB's information_schema costs milliseconds a table (the tables change only with
        # `refresh`).
        self._time_columns: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.tables: tuple[str, ...] = self._list_tables()

    def _list_tables(self) -> tuple[str, ...]:
        rows = self.connection.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "order by table_name",
            [RAW_SCHEMA],
        ).fetchall()
        return tuple(r[0] for r in rows)

    def refresh(self) -> None:
        with self._lock:
            self.tables = self._list_tables()
            self._windows.clear()
            self._time_columns.clear()
            if self.answers is not None:
                self.answers.clear()

    def columns(self, table: str) -> list[str]:
        rows = self.connection.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [RAW_SCHEMA, table],
        ).fetchall()
        return [r[0] for r in rows]

    def seal(self, *, memory_mb: int | None = None, threads: int | None = None) -> None:
        """Limit the database to reading the store, for good; later calls change nothing.

        `memory_mb` and `threads` become DuckDB's `memory_limit` and `threads`, set before the
        configuration is locked (afterwards no statement can change any setting).
        """
        if self.sealed:
            return
        con = self.connection
        if memory_mb is not None:
            con.execute(f"set memory_limit = '{int(memory_mb)}MB'")
        if threads is not None:
            con.execute(f"set threads = {int(threads)}")
        if self.readable:
            allowed = ", ".join(_sql_text(_as_directory(p)) for p in self.readable)
            con.execute(f"set allowed_directories = [{allowed}]")
        # DuckDB draws a progress bar on stdout for long queries; stdout may carry `--json`.
        con.execute("set enable_progress_bar = false")
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        self.sealed = True

    def open(self, window: TimeWindow) -> Telemetry:
        """A read-only handle whose table names resolve to this window's rows."""
        self.seal()
        schema = self._window_schema(window)
        return self.handle(schema, window)

    def handle(self, schema: str, window: TimeWindow) -> Telemetry:
        """A handle on a schema of views already made (sealing first if not yet sealed)."""
        self.seal()
        cursor = self.connection.cursor()
        cursor.execute(f"set search_path = '{schema},{RAW_SCHEMA}'")
        return Telemetry(
            _cursor=cursor, window=window, schema=schema, tables=self.tables, opener=self.open,
            answers=self.answers,
        )

    def window_schema(self, window: TimeWindow) -> str:
        """The schema of views limited to the window (made once per window)."""
        return self._window_schema(window)

    def _window_schema(self, window: TimeWindow) -> str:
        from casebook.sdk.schema import time_column_of

        key = (window.start, window.end)
        with self._lock:
            existing = self._windows.get(key)
            if existing:
                return existing
            # A window before 1970 has a negative timestamp; "-" cannot stand in a name.
            schema = f"w{len(self._windows)}_{int(window.start.timestamp())}".replace("-", "m")
            con = self.connection
            con.execute(f"create schema if not exists {schema}")
            start = window.start.replace(tzinfo=None)
            end = window.end.replace(tzinfo=None)
            for table in self.tables:
                if table not in self._time_columns:
                    self._time_columns[table] = time_column_of(table, self.columns(table))
                column = self._time_columns[table]
                if column is None:
                    body = f"select * from {RAW_SCHEMA}.{table}"
                else:
                    body = (
                        f"select * from {RAW_SCHEMA}.{table} where {column} >= "
                        f"TIMESTAMP '{start.isoformat(sep=' ')}' and {column} < "
                        f"TIMESTAMP '{end.isoformat(sep=' ')}'"
                    )
                try:
                    con.execute(f"create or replace view {schema}.{table} as {body}")
                except duckdb.PermissionException as exc:
                    raise TelemetryError(
                        f"table {table!r} reads files outside the directories this telemetry "
                        f"source may read ({', '.join(self.readable) or 'none'}): {exc}; "
                        "declare them with TelemetrySource(connection, readable=[directory])"
                    ) from exc
            self._windows[key] = schema
            return schema


def _as_directory(path: str) -> str:
    return path if path.endswith(os.sep) else path + os.sep


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
