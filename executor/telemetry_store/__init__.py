"""The telemetry store: Parquet datasets in a directory or under s3://bucket/prefix (default),
or one DuckDB file.

store = TelemetryStore.open("telemetry/", create=True)
store.append("logs", arrow_table, key="batch-digest")   # validated, atomic, idempotent by key
telemetry = store.source().open(window)                # what analyzers receive
store.compact(retention=timedelta(days=14))            # merge hourly files, drop old hours
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from casebook.executor.absent_modules import remember_absent
from casebook.executor.telemetry_store.answers import QueryAnswers
from casebook.executor.telemetry_store.conformance import (
    Batch,
    SchemaError,
    TelemetryStoreError,
    check_table_name,
    conform,
    ident,
    memory_connection,
    sql_text,
)
from casebook.executor.telemetry_store.location import LocalLocation, is_url, location_of
from casebook.executor.telemetry_store.manifest import ORPHAN_AGE
from casebook.executor.telemetry_store.partitions import GRACE, Compaction, ParquetTables
from casebook.executor.telemetry_store.temp_files import remove_stale_temp_files
from casebook.sdk.schema import CORE_TABLES, time_column_of
from casebook.sdk.telemetry import RAW_SCHEMA, TelemetrySource

remember_absent()  # DuckDB looks for pandas on every statement with parameters

DUCKDB_SUFFIXES = (".duckdb", ".db")
ATTACHED = "casebook_store"
KEYS_TABLE = "casebook_keys.batches"  # batch keys of a DuckDB-file store, beside its tables

__all__ = [
    "Batch",
    "Compaction",
    "SchemaError",
    "TelemetryStore",
    "TelemetryStoreError",
    "check_table_name",
    "conform",
    "is_url",
]

Snapshot = dict[str, tuple[str, ...]]  # table -> the files readers see


class TelemetryStore:
    """Telemetry tables at PATH: `PATH/<table>/hour=.../*.parquet` named by a manifest per
    table (PATH may be `s3://bucket/prefix`), or a `.duckdb`/`.db` file."""

    def __init__(self, path: str | os.PathLike[str], create: bool = False):
        self.location = location_of(path)
        remote = self.location.remote
        # Absolute path or URL: the name that reaches Ray workers on other machines intact.
        self.url = self.location.url("")
        self.path = self.location.root if isinstance(self.location, LocalLocation) else None
        suffix = Path(self.url).suffix.lower()
        self.layout = "duckdb" if suffix in DUCKDB_SUFFIXES else "parquet"
        if remote and self.layout == "duckdb":
            raise TelemetryStoreError(
                f"{path}: a DuckDB file store cannot live on object storage; use a Parquet "
                "store there (s3://bucket/prefix, without .duckdb or .db)"
            )
        self._parquet = ParquetTables(self.location)
        if not self.location.exists():
            if not create:
                raise TelemetryStoreError(
                    f"no telemetry store at {path}; create one with "
                    f"`casebook ingest FILE... --telemetry {path}`"
                )
            self._create()
        elif (self.layout == "parquet") != self.location.is_dir():
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
        return f"TelemetryStore({self.url!r}, layout={self.layout!r})"

    def _create(self) -> None:
        if self.layout == "parquet":
            self.location.make_root()
        else:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            duckdb.connect(str(self.path)).close()

    # reading

    def snapshot(self) -> Snapshot:
        """The files each table's readers see now (Parquet stores; empty for a DuckDB file).

        Two equal snapshots mean the same data, so a reader may keep its connection.
        """
        return self._parquet.snapshot() if self.layout == "parquet" else {}

    def tables(self) -> list[str]:
        """Tables that hold data, sorted by name."""
        if self.layout == "parquet":
            return list(self.snapshot())
        with duckdb.connect(str(self.path), read_only=True) as con:
            rows = con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def connect(self, snapshot: Snapshot | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory connection whose schema `raw` holds one read-only view per table.

        A Parquet table's view reads the files its manifest named when connecting (or those of
        `snapshot`): files written later, or a compaction's swap, show on the next connection.
        Core tables without data are empty views with the schema's columns, so analyzers can
        query them anyway.
        """
        con = memory_connection()
        con.execute(f"create schema {RAW_SCHEMA}")
        if self.layout == "parquet":
            files = self.snapshot() if snapshot is None else snapshot
            present = list(files)
            self.location.configure(con)
            # Files are never rewritten once a manifest names them, so footers can be cached.
            con.execute("set parquet_metadata_cache = true")
            for table, paths in files.items():
                listed = ", ".join(sql_text(p) for p in paths)
                con.execute(
                    f"create view {RAW_SCHEMA}.{table} as select * from read_parquet("
                    f"[{listed}], union_by_name = true, hive_partitioning = false)"
                )
        else:
            present = self.tables()
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

    def source(self, snapshot: Snapshot | None = None) -> TelemetrySource:
        """A `TelemetrySource` over this store, which opens window-scoped `Telemetry` handles.

        A Parquet store's source reads one snapshot for good, so it keeps the answers to the
        queries it has run (`answers.QueryAnswers`) for every handle it opens later.
        """
        readable = (str(self.path),) if self.path is not None else (self.url,)
        source = TelemetrySource(self.connect(snapshot), readable=readable)
        if self.layout == "parquet":
            source.answers = QueryAnswers()
        return source

    def row_counts(self) -> dict[str, int]:
        """Rows per table that holds data."""
        snapshot = self.snapshot() if self.layout == "parquet" else None
        tables = list(snapshot) if snapshot is not None else self.tables()
        if not tables:
            return {}
        counts = " union all ".join(
            f"select '{t}', count(*) from {RAW_SCHEMA}.{ident(t)}" for t in tables
        )
        with self.connect(snapshot) as con:
            return {name: count for name, count in con.execute(counts).fetchall()}

    def time_range(self, table: str) -> tuple[datetime | None, datetime | None]:
        """The earliest and latest time in a table (None, None when empty or timeless)."""
        tables = self.tables()
        if table not in tables and table not in CORE_TABLES:
            raise TelemetryStoreError(
                f"no table {table!r} in the telemetry store {self.url}; "
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

    def append(self, table: str, data: pa.Table, key: str | None = None) -> Batch:
        """Validate rows against the schema and add them to a table atomically.

        With a key (a digest of the payload, a delivery id), a batch the table already took in
        under that key adds nothing; the returned batch then has `duplicate=True`.
        """
        batch = dataclasses.replace(conform(table, data), key=key)
        (added,) = self.write([batch])
        return batch if added or not batch.rows else dataclasses.replace(batch, duplicate=True)

    def write(self, batches: Sequence[Batch]) -> list[bool]:
        """Add conformed batches all together: a failure leaves the store as it was.

        Returns, per batch, whether it added rows: False when empty, or when its key was
        taken in before (by this table; each table keeps its own keys).
        """
        if not any(b.rows for b in batches):
            return [False] * len(batches)
        if self.layout == "parquet":
            return self._parquet.write(batches)
        return self._write_duckdb(batches)

    def compact(
        self,
        retention: timedelta | None = None,
        grace: timedelta = GRACE,
        orphan_age: timedelta = ORPHAN_AGE,
    ) -> list[Compaction]:
        """Merge each hour's small files into one and drop hours older than `retention`.

        Readers never see a half-done step: the merged file is written, the table's manifest
        is swapped, and the replaced files are deleted `grace` later (by a later run). Files
        no manifest names (a writer killed before it committed) are deleted once older than
        `orphan_age`; a shorter one than the default may delete a running writer's files.
        A DuckDB-file store only drops rows older than the retention.
        """
        if self.layout == "parquet":
            if self.path is not None:
                remove_stale_temp_files(self.path)  # half-written manifests of killed writers
            return self._parquet.compact(retention, grace, orphan_age=orphan_age)
        return self._expire_duckdb(retention)

    def _duckdb_writer(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise TelemetryStoreError(
                f"cannot write to the DuckDB store {self.path}: {exc}; a DuckDB file takes one "
                "writer and no readers at a time, so close the other connection or process, or "
                "use a Parquet directory store (any path not ending in .duckdb or .db)"
            ) from exc

    def _write_duckdb(self, batches: Sequence[Batch]) -> list[bool]:
        con = self._duckdb_writer()
        added = [False] * len(batches)
        now = datetime.now(UTC).replace(tzinfo=None)
        # Closing the connection before the commit discards the whole transaction.
        try:
            con.execute("begin transaction")
            con.execute("create schema if not exists casebook_keys")
            con.execute(
                f"create table if not exists {KEYS_TABLE} "
                "(table_name varchar, key varchar, taken_at timestamp)"
            )
            for index, batch in enumerate(batches):
                if not batch.rows:
                    continue
                if batch.key is not None:
                    seen = con.execute(
                        f"select count(*) from {KEYS_TABLE} where table_name = ? and key = ?",
                        [batch.table, batch.key],
                    ).fetchone()
                    if seen and seen[0]:
                        continue
                    con.execute(
                        f"insert into {KEYS_TABLE} values (?, ?, ?)", [batch.table, batch.key, now]
                    )
                name = f"batch_{index}"
                con.register(name, batch.data)
                _ensure_table(con, batch, name)
                con.execute(
                    f'insert into main."{batch.table}" by name select * from {name}'
                    f"{_order_by(batch)}"
                )
                added[index] = True
            con.execute("commit")
        except duckdb.Error as exc:
            raise TelemetryStoreError(f"could not write to {self.path}: {exc}") from exc
        finally:
            con.close()
        return added

    def _expire_duckdb(self, retention: timedelta | None) -> list[Compaction]:
        if retention is None:
            return []
        cutoff = (datetime.now(UTC) - retention).replace(tzinfo=None)
        done = []
        tables = self.tables()
        con = self._duckdb_writer()
        try:
            con.execute("begin transaction")
            for table in tables:
                columns = [d[0] for d in con.execute(f'describe main."{table}"').fetchall()]
                column = time_column_of(table, columns)
                if column is None:
                    continue
                row = con.execute(
                    f'delete from main."{table}" where {ident(column)} < ?', [cutoff]
                ).fetchone()
                done.append(Compaction(table, 0, 0, row[0] if row else 0, 0))
            con.execute("commit")
        finally:
            con.close()
        return done


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
