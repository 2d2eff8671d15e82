"""The telemetry store: a directory of Parquet datasets (default) or one DuckDB file.

store = TelemetryStore.open("telemetry/", create=True)
store.append("logs", arrow_table)          # validated against sdk/schema.py, atomic
telemetry = store.source().open(window)    # what analyzers receive
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from casebook.executor.telemetry_store.conformance import (
    TABLE_NAME,
    Batch,
    SchemaError,
    TelemetryStoreError,
    check_table_name,
    conform,
    ident,
    memory_connection,
    sql_text,
)
from casebook.executor.telemetry_store.temp_files import temp_path
from casebook.sdk.schema import CORE_TABLES, time_column_of
from casebook.sdk.telemetry import RAW_SCHEMA, TelemetrySource

DUCKDB_SUFFIXES = (".duckdb", ".db")
ATTACHED = "casebook_store"

__all__ = [
    "Batch",
    "SchemaError",
    "TelemetryStore",
    "TelemetryStoreError",
    "check_table_name",
    "conform",
]


class TelemetryStore:
    """Telemetry tables at PATH: `PATH/<table>/part-*.parquet`, or a `.duckdb`/`.db` file."""

    def __init__(self, path: str | os.PathLike[str], create: bool = False):
        self.path = Path(path).expanduser().resolve()
        self.layout = "duckdb" if self.path.suffix.lower() in DUCKDB_SUFFIXES else "parquet"
        if not self.path.exists():
            if not create:
                raise TelemetryStoreError(
                    f"no telemetry store at {path}; create one with "
                    f"`casebook ingest FILE... --telemetry {path}`"
                )
            self._create()
        elif (self.layout == "parquet") != self.path.is_dir():
            found = "a file" if self.layout == "parquet" else "a directory"
            raise TelemetryStoreError(
                f"{path} is {found}, not a telemetry store; a store is a directory of Parquet "
                "datasets, or a DuckDB file whose name ends in .duckdb or .db"
            )

    @classmethod
    def open(cls, path: str | os.PathLike[str], create: bool = False) -> TelemetryStore:
        """The store at PATH; with create=True an empty one is made when none exists."""
        return cls(path, create=create)

    def __repr__(self) -> str:
        return f"TelemetryStore({str(self.path)!r}, layout={self.layout!r})"

    def _create(self) -> None:
        if self.layout == "parquet":
            self.path.mkdir(parents=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            duckdb.connect(str(self.path)).close()

    # reading

    def tables(self) -> list[str]:
        """Tables that hold data, sorted by name."""
        if self.layout == "parquet":
            return sorted(
                d.name
                for d in self.path.iterdir()
                if d.is_dir() and TABLE_NAME.match(d.name) and any(d.glob("*.parquet"))
            )
        with duckdb.connect(str(self.path), read_only=True) as con:
            rows = con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection whose schema `raw` holds one read-only view per table.

        Core tables without data are empty views with the schema's columns, so analyzers can
        query them anyway.
        """
        con = memory_connection()
        con.execute(f"create schema {RAW_SCHEMA}")
        present = self.tables()
        if self.layout == "parquet":
            # Files are never rewritten once renamed into place, so their footers can be cached.
            con.execute("set parquet_metadata_cache = true")
            for table in present:
                files = sql_text(str(self.path / table / "*.parquet"))
                con.execute(
                    f"create view {RAW_SCHEMA}.{table} as select * from read_parquet("
                    f"{files}, union_by_name = true, hive_partitioning = false)"
                )
        else:
            con.execute(f"attach {sql_text(str(self.path))} as {ATTACHED} (read_only)")
            for table in present:
                con.execute(
                    f'create view {RAW_SCHEMA}."{table}" as select * from {ATTACHED}.main."{table}"'
                )
        for spec in CORE_TABLES.values():
            if spec.name not in present:
                columns = ", ".join(f"cast(null as {c.type}) as {c.name}" for c in spec.columns)
                con.execute(f"create view {RAW_SCHEMA}.{spec.name} as select {columns} where false")
        return con

    def source(self) -> TelemetrySource:
        """A `TelemetrySource` over this store, which opens window-scoped `Telemetry` handles."""
        return TelemetrySource(self.connect(), readable=(str(self.path),))

    def row_counts(self) -> dict[str, int]:
        """Rows per table that holds data."""
        tables = self.tables()
        if not tables:
            return {}
        counts = " union all ".join(
            f"select '{t}', count(*) from {RAW_SCHEMA}.{ident(t)}" for t in tables
        )
        with self.connect() as con:
            return {name: count for name, count in con.execute(counts).fetchall()}

    def time_range(self, table: str) -> tuple[datetime | None, datetime | None]:
        """The earliest and latest time in a table (None, None when empty or timeless)."""
        tables = self.tables()
        if table not in tables and table not in CORE_TABLES:
            raise TelemetryStoreError(
                f"no table {table!r} in the telemetry store {self.path}; "
                f"tables: {', '.join(tables) or 'none yet'}"
            )
        with self.connect() as con:
            relation = con.sql(f"select * from {RAW_SCHEMA}.{ident(table)} limit 0")
            column = time_column_of(table, relation.columns)
            if column is None:
                return None, None
            bounds = con.execute(
                f"select min({ident(column)}), max({ident(column)}) from {RAW_SCHEMA}.{ident(table)}"
            ).fetchall()
        return bounds[0][0], bounds[0][1]

    # writing

    def append(self, table: str, data: pa.Table) -> Batch:
        """Validate rows against the schema and add them to a table atomically."""
        batch = conform(table, data)
        self.write([batch])
        return batch

    def write(self, batches: Sequence[Batch]) -> None:
        """Add conformed batches all together: a failure leaves the store as it was."""
        batches = [b for b in batches if b.rows]
        if not batches:
            return
        if self.layout == "parquet":
            self._write_parquet(batches)
        else:
            self._write_duckdb(batches)

    def _write_parquet(self, batches: list[Batch]) -> None:
        staged: list[tuple[Path, Path]] = []
        created: list[Path] = []
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        try:
            con = memory_connection()
            for index, batch in enumerate(batches):
                folder = self.path / batch.table
                if not folder.exists():
                    folder.mkdir()
                    created.append(folder)
                name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
                # The temporary name does not match `*.parquet`, so readers never see it.
                temp = temp_path(folder / name)
                staged.append((temp, folder / name))
                con.register(f"batch_{index}", batch.data)
                con.execute(
                    f"copy (select * from batch_{index}{_order_by(batch)}) to "
                    f"{sql_text(str(temp))} (format parquet, compression zstd)"
                )
                _fsync(temp)
            con.close()
        except BaseException:
            for temp, _ in staged:
                temp.unlink(missing_ok=True)
            for folder in created:
                folder.rmdir()
            raise
        for temp, final in staged:
            os.replace(temp, final)
        for folder in {final.parent for _, final in staged} | {self.path}:
            _fsync(folder)

    def _write_duckdb(self, batches: list[Batch]) -> None:
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise TelemetryStoreError(
                f"cannot write to the DuckDB store {self.path}: {exc}; a DuckDB file takes one "
                "writer and no readers at a time, so close the other connection or process, or "
                "use a Parquet directory store (any path not ending in .duckdb or .db)"
            ) from exc
        # Closing the connection before the commit discards the whole transaction.
        try:
            con.execute("begin transaction")
            for index, batch in enumerate(batches):
                name = f"batch_{index}"
                con.register(name, batch.data)
                _ensure_table(con, batch, name)
                con.execute(
                    f'insert into main."{batch.table}" by name select * from {name}'
                    f"{_order_by(batch)}"
                )
            con.execute("commit")
        except duckdb.Error as exc:
            raise TelemetryStoreError(f"could not write to {self.path}: {exc}") from exc
        finally:
            con.close()


def _ensure_table(con: duckdb.DuckDBPyConnection, batch: Batch, view: str) -> None:
    spec = CORE_TABLES.get(batch.table)
    if spec is not None:
        columns = ", ".join(f"{c.name} {c.type}" for c in spec.columns)
        con.execute(f"create table if not exists main.{spec.name} ({columns})")
        return
    existing = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'main' and table_name = ?",
            [batch.table],
        ).fetchall()
    }
    if not existing:
        con.execute(f'create table main."{batch.table}" as select * from {view} limit 0')
        return
    for name, kind, *_ in con.execute(f"describe select * from {view}").fetchall():
        if name not in existing:
            con.execute(f'alter table main."{batch.table}" add column {ident(name)} {kind}')


def _order_by(batch: Batch) -> str:
    # Sorted by time, each Parquet row group covers a short span, so window scans skip most.
    return f" order by {ident(batch.time_column)}" if batch.time_column else ""


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
