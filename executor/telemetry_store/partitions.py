"""The Parquet layout: hourly partitions per table, a manifest per table, compaction, retention.

    logs/_manifest.json                                   which files readers see (manifest.py)
    logs/hour=2026-12-03T10/part-20261203T101502-ab12.parquet    one per write and hour
    logs/hour=2026-12-03T09/compact-20261203T110000-cd34.parquet  one per hour once compacted
    owners/timeless/part-20261203T101502-ef56.parquet     rows without a time (column)

Each write adds one file per hour its rows cover; compaction merges an hour's files into one and
drops the hours older than the retention.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from casebook.executor.telemetry_store.conformance import (
    TABLE_NAME,
    Batch,
    TelemetryStoreError,
    ident,
    scratch_connection,
    sql_text,
)
from casebook.executor.telemetry_store.location import LocalLocation, Location
from casebook.executor.telemetry_store.manifest import ORPHAN_AGE, Manifest, Part, commit
from casebook.sdk.schema import time_column_of

HOUR = "%Y-%m-%dT%H"
TIMELESS = "timeless"  # the folder of rows without a time
# A still-open hour is merged anyway once it holds this many files, so readers open few.
MAX_OPEN_PARTS = 32
# Replaced files stay this long, so queries that started before the swap can finish.
GRACE = timedelta(minutes=15)
# Column types that pyarrow writes to Parquet exactly as DuckDB's COPY does (same physical and
# logical types, same map layout), so either writer's files read back the same.
ARROW_WRITABLE = (pa.string(), pa.timestamp("us"), pa.float64(), pa.int64(), pa.int32(),
                  pa.bool_(), pa.map_(pa.string(), pa.string()))
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size
HOUR_US = 3_600_000_000
# Times whose hour Python names as DuckDB does (four-digit years); others are left to DuckDB.
ARROW_TIMES_US = ((datetime(1000, 1, 1) - datetime(1970, 1, 1)) // timedelta(microseconds=1),
                  (datetime(9999, 12, 31) - datetime(1970, 1, 1)) // timedelta(microseconds=1))


@dataclass(frozen=True)
class Compaction:
    """What compacting one table did."""

    table: str
    merged: int  # files merged into others
    written: int  # files written by merging
    dropped: int  # files dropped because their hour is older than the retention
    deleted: int  # files removed from storage (replaced ones past the grace period, orphans)
    orphans: int = 0  # of those, files (or unfinished uploads) of writers that died


class ParquetTables:
    """The tables of a Parquet store at a location (directory or object-store prefix)."""

    def __init__(self, location: Location):
        self.location = location

    def connection(self) -> duckdb.DuckDBPyConnection:
        con = scratch_connection()
        self.location.configure(con)
        return con

    # reading

    def snapshot(self) -> dict[str, tuple[str, ...]]:
        """The files readers see, per table that holds data; one consistent set per table."""
        files = {}
        for table in sorted(self._table_folders()):
            live = Manifest.load(self.location, table).files()
            if live:
                files[table] = tuple(self.location.url(f) for f in live)
        return files

    def _table_folders(self) -> list[str]:
        return [name for name in self.location.children() if TABLE_NAME.match(name)]

    # writing

    def write(self, batches: Sequence[Batch]) -> list[bool]:
        """Add batches (all of them, or none on a failure); False for one already taken in.

        Files are written first; then each table's manifest is read afresh, batches whose key
        arrived meanwhile are discarded, and the manifest is swapped if no other writer swapped
        it since (else all that is redone: manifest.commit). Only a failure while committing a
        second table can leave the first table's batch in (its key then makes the retry add
        the rest and nothing twice).
        """
        by_table: dict[str, list[int]] = defaultdict(list)
        for index, batch in enumerate(batches):
            by_table[batch.table].append(index)
        added = [False] * len(batches)
        written: dict[int, list[Part]] = {}
        started = time.monotonic()
        try:
            self._write_files(batches, by_table, written)
            for table, indexes in by_table.items():
                keyed = [(i, batches[i].key) for i in indexes]
                self._commit(table, keyed, written, added, started)
        except BaseException:
            for index, parts in written.items():
                if not added[index]:
                    for part in parts:
                        self.location.delete(part.path)
            raise
        return added

    def _write_files(
        self,
        batches: Sequence[Batch],
        by_table: dict[str, list[int]],
        written: dict[int, list[Part]],
    ) -> None:
        con: duckdb.DuckDBPyConnection | None = None
        try:
            for table, indexes in by_table.items():
                known = set(Manifest.load(self.location, table).keys)
                for index in indexes:
                    batch = batches[index]
                    if not batch.rows or (batch.key and batch.key in known):
                        continue
                    if batch.key:
                        known.add(batch.key)
                    if self._arrow_writes(batch):
                        written[index] = self._write_arrow(table, batch.data, batch.time_column)
                        continue
                    con = con or self.connection()
                    con.register("incoming", batch.data)
                    written[index] = self._write_rows(con, table, "incoming", batch.time_column)
                    con.unregister("incoming")
        finally:
            if con is not None:
                con.close()

    def _commit(
        self,
        table: str,
        keyed: list[tuple[int, str | None]],
        written: dict[int, list[Part]],
        added: list[bool],
        started: float,
    ) -> None:
        taken: list[int] = []

        def take(manifest: Manifest) -> bool:
            taken.clear()
            now = datetime.now(UTC).isoformat()
            for index, key in keyed:
                if index in written and not (key and key in manifest.keys):
                    manifest.parts += written[index]
                    if key:
                        manifest.keys[key] = now
                    taken.append(index)
            return bool(taken)

        commit(self.location, table, take, started)
        for index, _ in keyed:
            if index in taken:
                added[index] = True
            elif index in written:  # another writer took its key in meanwhile
                for part in written.pop(index):
                    self.location.delete(part.path)

    def _write_rows(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        source: str,
        time_column: str | None,
        prefix: str = "part",
    ) -> list[Part]:
        """Write the rows of `source` (SQL naming rows) as one new file per hour they cover."""
        if time_column is None:
            hour_of = "null"
            groups: list[tuple[str | None, int]] = [(None, _count(con, source))]
            groups = [g for g in groups if g[1]]
        else:
            hour_of = f"strftime(date_trunc('hour', {ident(time_column)}), '{HOUR}')"
            groups = con.execute(
                f"select {hour_of} as hour, count(*) from {source} group by all order by 1"
            ).fetchall()
        order = f" order by {ident(time_column)}" if time_column else ""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        parts: list[Part] = []
        try:
            for hour, rows in groups:
                # Not flat in the table's folder: flat files are the first layout's (manifest.py).
                folder = f"{table}/hour={hour}" if hour else f"{table}/{TIMELESS}"
                relative = f"{folder}/{prefix}-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
                match = "is null" if hour is None else f"= {sql_text(hour)}"
                self.location.prepare_write(relative)
                parts.append(Part(relative, hour, rows))  # deleted again if anything fails
                target = sql_text(self.location.url(relative))
                con.execute(
                    f"copy (select * from {source} where {hour_of} {match}{order}) to {target} "
                    "(format parquet, compression zstd)"
                )
                self.location.settle(relative)
        except BaseException as exc:
            for part in parts:
                self.location.delete(part.path)
            if isinstance(exc, duckdb.Error):
                raise TelemetryStoreError(
                    f"could not write to {self.location.url(table)}: {exc}"
                ) from exc
            raise
        return parts

    def _arrow_writes(self, batch: Batch) -> bool:
        """Whether pyarrow can write the batch: about ten times faster than DuckDB's COPY for
        map columns, and the same Parquet, for the types in ARROW_WRITABLE on a local disk."""
        if not isinstance(self.location, LocalLocation):
            return False
        if not all(field.type in ARROW_WRITABLE for field in batch.data.schema):
            return False
        column = batch.time_column
        if column is None:
            return True
        times = batch.data[column]
        bounds = pc.min_max(times.cast(pa.int64())).as_py()
        low, high = ARROW_TIMES_US
        return times.null_count == 0 and low <= bounds["min"] and bounds["max"] < high

    def _write_arrow(self, table: str, data: pa.Table, time_column: str | None) -> list[Part]:
        """`_write_rows` by pyarrow: one file per hour the rows cover, sorted by time."""
        groups: list[tuple[str | None, pa.Table]] = [(None, data)]
        if time_column is not None:
            data = data.take(pc.sort_indices(data[time_column]))  # stable: ties keep arrival order
            micros = data[time_column].cast(pa.int64()).to_numpy()
            hour_of = micros // HOUR_US
            cuts = [0, *(hour_of[1:] != hour_of[:-1]).nonzero()[0] + 1, len(micros)]
            groups = [(_hour_text(int(hour_of[start])), data.slice(start, end - start))
                      for start, end in zip(cuts, cuts[1:], strict=False)]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        parts: list[Part] = []
        try:
            for hour, rows in groups:
                folder = f"{table}/hour={hour}" if hour else f"{table}/{TIMELESS}"
                relative = f"{folder}/part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
                self.location.prepare_write(relative)
                parts.append(Part(relative, hour, rows.num_rows))  # deleted again on failure
                try:
                    pq.write_table(rows, self.location.url(relative), compression="zstd",
                                   row_group_size=ROW_GROUP_ROWS, store_schema=False)
                except (OSError, pa.ArrowException) as exc:
                    raise TelemetryStoreError(
                        f"could not write to {self.location.url(table)}: {exc}"
                    ) from exc
                self.location.settle(relative)
        except BaseException:
            for part in parts:
                self.location.delete(part.path)
            raise
        return parts

    # upkeep

    def compact(
        self,
        retention: timedelta | None = None,
        grace: timedelta = GRACE,
        now: datetime | None = None,
        orphan_age: timedelta = ORPHAN_AGE,
    ) -> list[Compaction]:
        """Merge each hour's files into one, drop hours past the retention, delete leftovers:
        replaced files after `grace`, files no manifest names after `orphan_age`."""
        now = now or datetime.now(UTC)
        tables = sorted(self._table_folders())
        return [self._compact(t, retention, grace, now, orphan_age) for t in tables]

    def _compact(
        self,
        table: str,
        retention: timedelta | None,
        grace: timedelta,
        now: datetime,
        orphan_age: timedelta,
    ) -> Compaction:
        # Merging reads and writes whole hours before the commit; the commit applies only the
        # merges whose files are all still live in the manifest it swaps.
        started = time.monotonic()
        planned = Manifest.load(self.location, table)
        cutoff = now - retention if retention is not None else None
        merges = self._merge(planned, now, cutoff)
        applied: list[int] = []
        dropped, deletable = 0, []

        def change(manifest: Manifest) -> bool:
            nonlocal dropped, deletable
            applied.clear()
            live = set(manifest.files())
            for index, (parts, new) in enumerate(merges):
                if all(p.path in live for p in parts):  # else another compaction came first
                    manifest.retire(parts, now)
                    manifest.parts += new
                    applied.append(index)
            keys = len(manifest.keys)
            dropped = self._expire(manifest, cutoff, now)
            deletable = manifest.deletable(now, grace)
            for path in deletable:  # named no more, then deleted once the swap is done
                manifest.retired.pop(path)
            first = not manifest.saved and bool(manifest.parts)  # the flat layout's first
            return bool(applied or dropped or deletable or first
                        or len(manifest.keys) != keys)  # fmt: skip

        try:
            commit(self.location, table, change, started)
        except BaseException:
            applied.clear()
            raise
        finally:
            for index, (_, new) in enumerate(merges):
                if index not in applied:
                    for part in new:
                        self.location.delete(part.path)
        for path in deletable:
            self.location.delete(path)
        orphans = self._delete_orphans(table, now - orphan_age)
        merged = sum(len(merges[i][0]) for i in applied)
        written = sum(len(merges[i][1]) for i in applied)
        return Compaction(table, merged, written, dropped, len(deletable) + orphans, orphans)

    def _expire(self, manifest: Manifest, cutoff: datetime | None, now: datetime) -> int:
        if cutoff is None:
            return 0
        expired = [p for p in manifest.parts if p.hour is not None and _hour_end(p.hour) <= cutoff]
        manifest.retire(expired, now)
        manifest.forget_keys_before(cutoff)
        return len(expired)

    def _delete_orphans(self, table: str, before: datetime) -> int:
        """Delete files no manifest names that were written before `before`, and cancel the
        unfinished uploads started then: writers that died before committing left them."""
        # Listed first, checked against a manifest read after: a file committed meanwhile is
        # named by it, and one still uncommitted is past COMMIT_WITHIN, so never committed.
        listed = [
            f.path
            for f in self.location.files(table)
            if f.path.endswith(".parquet")
            and not f.path.rsplit("/", 1)[-1].startswith(".")
            and f.modified <= before
        ]
        known = Manifest.load(self.location, table).known() if listed else set()
        orphans = [path for path in listed if path not in known]
        for path in orphans:
            self.location.delete(path)
        return len(orphans) + self.location.abort_uploads(table, before)

    def _merge(
        self, manifest: Manifest, now: datetime, cutoff: datetime | None
    ) -> list[tuple[list[Part], list[Part]]]:
        """Write the merged files: (files replaced, files replacing them) per merged group."""
        groups: dict[str | None, list[Part]] = defaultdict(list)
        for part in manifest.parts:
            groups[part.hour].append(part)
        merges = []
        con = self.connection()
        try:
            for hour, parts in sorted(groups.items(), key=lambda item: item[0] or ""):
                if hour is not None and cutoff is not None and _hour_end(hour) <= cutoff:
                    continue  # about to be dropped
                # Flat files of the first layout (rows unknown) are split into hours even alone.
                unsplit = hour is None and any(p.rows < 0 for p in parts)
                closed = hour is None or _hour_end(hour) <= now
                few = len(parts) < 2 or (not closed and len(parts) < MAX_OPEN_PARTS)
                if few and not unsplit:
                    continue
                files = ", ".join(sql_text(self.location.url(p.path)) for p in parts)
                source = f"read_parquet([{files}], union_by_name = true, hive_partitioning = false)"
                columns = con.sql(f"select * from {source} limit 0").columns
                time_column = time_column_of(manifest.table, columns)
                new = self._write_rows(con, manifest.table, source, time_column, "compact")
                merges.append((parts, new))
        except BaseException:
            for _, new in merges:
                for part in new:
                    self.location.delete(part.path)
            raise
        finally:
            con.close()
        return merges


def _hour_text(hour: int) -> str:
    """An hour counted from the epoch as a partition name, as DuckDB's strftime writes it."""
    return (datetime(1970, 1, 1) + timedelta(hours=hour)).strftime(HOUR)


def _hour_end(hour: str) -> datetime:
    return datetime.strptime(hour, HOUR).replace(tzinfo=UTC) + timedelta(hours=1)


def _count(con: duckdb.DuckDBPyConnection, view: str) -> int:
    row = con.execute(f"select count(*) from {view}").fetchone()
    return row[0] if row else 0
