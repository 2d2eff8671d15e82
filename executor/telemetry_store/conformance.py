"""Rows made to fit their table: the schema in sdk/schema.py, checked and cast with DuckDB."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from casebook.executor.errors import UserError
from casebook.sdk.schema import CORE_TABLES, MAP, Column, Table, time_column_of

TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
EMPTY_MAP = f"CAST(MAP {{}} AS {MAP})"
TIMESTAMP_EXPECTED = "a timestamp (ISO 8601 text, or epoch seconds/ms/us/ns)"
# Sources spell levels and span statuses many ways; analyzers compare against one spelling.
LEVEL_SYNONYMS = {
    "warning": "warn",
    "err": "error",
    "critical": "fatal",
    "crit": "fatal",
    "information": "info",
    "informational": "info",
}
ERROR_STATUSES = ("error", "status_code_error", "2")
OK_STATUSES = ("ok", "unset", "status_code_ok", "status_code_unset", "0", "1")


class TelemetryStoreError(UserError):
    """The store is missing or unusable, or was given rows it cannot hold."""


class SchemaError(TelemetryStoreError):
    """Rows that do not fit their table; names the table, the column and the row when known."""

    def __init__(self, table: str, column: str, problem: str, row: int | None = None):
        self.table, self.column, self.problem, self.row = table, column, problem, row
        where = f"table {table}" + (f" row {row + 1}" if row is not None else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Batch:
    """Rows conformed to one table, ready to write."""

    table: str
    data: pa.Table
    time_column: str | None
    key: str | None = None  # identifies the batch: one the store already took in is skipped
    duplicate: bool = False  # set on what append() returns when the key was taken in before

    @property
    def rows(self) -> int:
        return self.data.num_rows

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """The earliest and latest time in the batch (None without a time column or rows)."""
        if self.time_column is None or not self.rows:
            return None, None
        bounds = pc.min_max(self.data[self.time_column])
        return bounds["min"].as_py(), bounds["max"].as_py()


def conform(table: str, data: pa.Table) -> Batch:
    """Rows cast to their table's schema: core tables per sdk/schema.py, others' time column.

    A core table must have its required columns; optional ones are filled (NULL, or an empty
    map), and columns the schema does not name go into the table's map column (labels or
    attributes). Time values may be ISO 8601 text or epoch numbers; all become naive UTC.
    """
    check_table_name(table)
    data = _without_time_zones(data)
    spec = CORE_TABLES.get(table)
    if spec is not None:
        outputs, checks = _core_columns(spec, data.schema)
        time_column: str | None = spec.time_column
    else:
        time_column = time_column_of(table, data.schema.names)
        if time_column is None:
            return Batch(table, data, None)
        outputs, checks = _extra_columns(table, data.schema, time_column)
    present = [f"({c.present}) as __present_{i}" for i, c in enumerate(checks)]
    flags = [
        f"({ident(c.column)} is null and __present_{i}) as __bad_{i}" for i, c in enumerate(checks)
    ]
    inner = f"select {', '.join(outputs + present)} from incoming"
    query = f"select * from ({inner})"
    if checks:
        hidden = ", ".join(f"__present_{i}" for i in range(len(checks)))
        query = f"select * exclude ({hidden}), {', '.join(flags)} from ({inner})"
    con = scratch_connection()
    con.register("incoming", data)
    try:
        result = arrow_table(con.sql(query))
    except duckdb.Error as exc:
        raise TelemetryStoreError(f"table {table}: could not convert the rows: {exc}") from exc
    finally:
        con.close()
    for index, check in enumerate(checks):
        bad = result[f"__bad_{index}"]
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            found = data[check.column][row].as_py()
            shown = "an empty value" if found in (None, "") else _shorten(found)
            problem = f"column {check.column}: expected {check.expected}, found {shown}"
            raise SchemaError(table, check.column, problem, row)
    keep = [n for n in result.column_names if not n.startswith("__bad_")]
    return Batch(table, result.select(keep), time_column)


@dataclass(frozen=True)
class Check:
    """A converted column whose rows fail when the output is NULL while `present` holds."""

    column: str
    present: str  # SQL over the input columns
    expected: str


def check_table_name(table: str) -> None:
    """Refuse a table name analyzers could not write unquoted in SQL."""
    if not TABLE_NAME.match(table):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", table.lower()).strip("_") or "my_table"
        if suggestion[0].isdigit():
            suggestion = f"t_{suggestion}"
        raise TelemetryStoreError(
            f"table name {table!r} is not a plain SQL name (lower-case letters, digits and _, "
            f"not starting with a digit); use {suggestion!r}"
        )


def _core_columns(spec: Table, schema: pa.Schema) -> tuple[list[str], list[Check]]:
    names = schema.names
    for column in spec.columns:
        if column.required and column.name not in names:
            raise SchemaError(
                spec.name,
                column.name,
                f"missing column {column.name} ({column.meaning}); found columns: "
                f"{', '.join(names) or 'none'}; add it or rename the column that holds it",
            )
    extras = [(ident(n), n, schema.field(n).type) for n in names if n not in spec.column_names]
    outputs: list[str] = []
    checks: list[Check] = []
    for column in spec.columns:
        if column.name not in names:
            value = EMPTY_MAP if column.type == MAP else f"cast(null as {column.type})"
        else:
            value, present = _convert(spec, column, schema.field(column.name).type)
            if present is not None:
                checks.append(Check(column.name, present, _expectation(column)))
        if column.type == MAP and extras:
            value = f"map_concat({_entries_map(extras)}, {value})"
        outputs.append(f"{value} as {column.name}")
    return outputs, checks


def _extra_columns(
    table: str, schema: pa.Schema, time_column: str
) -> tuple[list[str], list[Check]]:
    ref = ident(time_column)
    value, present = _timestamp(ref, schema.field(time_column).type, table, time_column)
    return [f"* replace ({value} as {ref})"], [Check(time_column, present, TIMESTAMP_EXPECTED)]


def _convert(spec: Table, column: Column, kind: pa.DataType) -> tuple[str, str | None]:
    """SQL casting one input column, and SQL (over inputs) true where a value must come out."""
    ref = ident(column.name)
    if column.type == "TIMESTAMP":
        value, present = _timestamp(ref, kind, spec.name, column.name)
        # A row without its time column's value could never be found by a window.
        return value, "true" if column.name == spec.time_column else present
    if column.type == "DOUBLE":
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return f"cast({ref} as double)", None
        text = _blank_as_null(ref, kind)
        return f"try_cast({text} as double)", f"{text} is not null"
    if column.type == MAP:
        return _map(ref, kind, spec.name, column.name)
    text = _text(ref, kind)
    if column.name == "level":
        synonyms = " ".join(f"when '{k}' then '{v}'" for k, v in LEVEL_SYNONYMS.items())
        return f"case lower(trim({text})) {synonyms} else lower(trim({text})) end", None
    if spec.name == "spans" and column.name == "status":
        return (
            f"case when lower(trim({text})) in {ERROR_STATUSES} then 'error' "
            f"when lower(trim({text})) in {OK_STATUSES} then 'ok' else lower(trim({text})) end"
        ), None
    if not column.required:
        return f"nullif({text}, '')", None
    return text, None


def _timestamp(ref: str, kind: pa.DataType, table: str, column: str) -> tuple[str, str]:
    """SQL giving naive UTC TIMESTAMP from `ref`, and SQL true when the input held a value."""
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return f"cast({ref} as timestamp)", f"{ref} is not null"
    if pa.types.is_integer(kind):
        return _epoch_integer(f"cast({ref} as bigint)"), f"{ref} is not null"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _epoch_number(f"cast({ref} as double)"), f"{ref} is not null"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = f"nullif(trim({ref}), '')"
        value = (
            f"coalesce(try_cast(try_cast({text} as timestamptz) as timestamp), "
            f"{_epoch_number(f'try_cast({text} as double)')})"
        )
        return value, f"{text} is not null"
    if pa.types.is_null(kind):
        return "cast(null as timestamp)", "false"
    raise SchemaError(
        table,
        column,
        f"column {column}: expected {TIMESTAMP_EXPECTED}, found values of type {kind}",
    )


def _epoch_integer(value: str) -> str:
    # Epoch unit by magnitude: below 1e11 is seconds (until the year 5138), then ms, us, ns.
    micros = (
        f"case when abs({value}) < 100000000000 then {value} * 1000000 "
        f"when abs({value}) < 100000000000000 then {value} * 1000 "
        f"when abs({value}) < 100000000000000000 then {value} else {value} // 1000 end"
    )
    return f"make_timestamp({micros})"


def _epoch_number(value: str) -> str:
    micros = (
        f"case when abs({value}) < 1e11 then {value} * 1e6 when abs({value}) < 1e14 "
        f"then {value} * 1e3 when abs({value}) < 1e17 then {value} else {value} / 1e3 end"
    )
    return f"make_timestamp(try_cast(round({micros}) as bigint))"


def _map(ref: str, kind: pa.DataType, table: str, column: str) -> tuple[str, str | None]:
    if pa.types.is_map(kind):
        return f"coalesce(cast({ref} as {MAP}), {EMPTY_MAP})", None
    if pa.types.is_struct(kind):
        fields = [(f"{ref}.{ident(f.name)}", f.name, f.type) for f in kind]
        return f"coalesce({_entries_map(fields)}, {EMPTY_MAP})", None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = f"nullif(trim({ref}), '')"
        parsed = f"try_cast(try_cast({text} as json) as {MAP})"
        entries = f"[e for e in map_entries({parsed}) if e.value is not null]"
        value = f"case when {text} is null then {EMPTY_MAP} else map_from_entries({entries}) end"
        return value, f"{text} is not null"
    if pa.types.is_null(kind):
        return EMPTY_MAP, None
    raise SchemaError(
        table,
        column,
        f"column {column}: expected key-value pairs (a map, an object "
        f"or JSON object text), found values of type {kind}",
    )


def _entries_map(columns: Sequence[tuple[str, str, pa.DataType]]) -> str:
    """SQL building a MAP(VARCHAR, VARCHAR) from (SQL ref, key, type) triples, skipping NULLs."""
    if not columns:
        return EMPTY_MAP
    entries = ", ".join(
        f"{{'key': {sql_text(key)}, 'value': nullif({_text(ref, kind)}, '')}}"
        for ref, key, kind in columns
    )
    return f"map_from_entries([e for e in [{entries}] if e.value is not null])"


def _text(ref: str, kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ref
    if pa.types.is_nested(kind):
        return f"cast(to_json({ref}) as varchar)"
    return f"cast({ref} as varchar)"


def _blank_as_null(ref: str, kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return f"nullif(trim({ref}), '')"
    return ref


def _expectation(column: Column) -> str:
    if column.type == "TIMESTAMP":
        return TIMESTAMP_EXPECTED
    if column.type == "DOUBLE":
        return "a number"
    return "a JSON object of key-value pairs"


def _without_time_zones(data: pa.Table) -> pa.Table:
    # Arrow keeps instants in UTC, so dropping the zone leaves naive UTC wall time.
    for index, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            naive = data.column(index).cast(pa.timestamp(field.type.unit))
            data = data.set_column(index, field.name, naive)
    return data


def arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A query's result as an Arrow table, under DuckDB 1.x and 2.x method names alike."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def memory_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    return con


_scratch: tuple[int, duckdb.DuckDBPyConnection] | None = None
_scratch_lock = threading.Lock()


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """A new cursor on one in-memory database per process, for work that only registers
    temporary views (conforming rows, writing files); close it after use.

    Opening a database costs ~30 ms on a busy machine, a cursor microseconds, and a receiver
    conforms and writes many small batches. Registered names and settings stay per cursor.
    """
    global _scratch
    with _scratch_lock:
        if _scratch is None or _scratch[0] != os.getpid():  # a forked worker gets its own
            _scratch = (os.getpid(), duckdb.connect(":memory:"))
        cursor = _scratch[1].cursor()
    cursor.execute("set TimeZone = 'UTC'")
    return cursor


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _shorten(value: Any, limit: int = 60) -> str:
    text = repr(value if not isinstance(value, datetime) else value.isoformat())
    return text if len(text) <= limit else text[: limit - 3] + "..."
