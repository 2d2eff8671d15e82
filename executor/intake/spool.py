"""Received telemetry on its way into the store: durable before it is acknowledged, written in
batches, bounded in memory, replayed exactly once after a crash.

A receiver hands over the rows of one request under a key (a digest of the request). They are
appended to a segment file and fsynced (requests arriving together share one fsync) before the
request is answered; a writer thread then puts everything spooled into the store with one
`TelemetryStore.write` every `flush_s` seconds, together with a row per key in the extra table
`receiver_batches`, and deletes the segments it wrote. After a crash the segments left are read
again, and keys the store's `receiver_batches` already holds are skipped, so a batch written
just before the crash is not written twice. A key seen within the last hour is acknowledged
without being stored again (a client re-sending a batch it got no answer for).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from casebook.executor.ingest.events import EVENT_COLUMNS
from casebook.executor.ingest.otlp_rows import COLUMNS
from casebook.executor.telemetry_store import Batch, SchemaError, TelemetryStore, conform

log = logging.getLogger("casebook.receivers")

MAGIC = b"CBS1"
HEADER = struct.Struct("<4sIII")  # magic, header length, payload length, crc32 of both
MARKER_TABLE = "receiver_batches"
REMEMBER_KEYS_S = 3600.0
REMEMBER_KEYS_AT_MOST = 500_000  # about 60 MiB of keys; the oldest are forgotten first
RETRY_S = 2.0
ALREADY_CONFORMED = ("logs", "metrics", "spans", "events", MARKER_TABLE)
MARKER_COLUMNS = {"ts": pa.timestamp("us"), "key": pa.string(), "tables": pa.string(),
                  "rows": pa.int64()}


class SpoolFull(Exception):
    """More is waiting for the store than the spool may hold; the client should retry later."""


@dataclass
class Record:
    key: str
    segment: int
    tables: dict[str, pa.Table]
    size: int


class Segment:
    """One append-only spool file; `synced` is how many of its bytes are known to be on disk."""

    def __init__(self, path: Path, number: int):
        self.path, self.number = path, number
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.written = self.synced = os.fstat(self.fd).st_size
        self.sync_lock = threading.Lock()
        self.closed = False

    def sync(self, upto: int) -> None:
        """Return once the first `upto` bytes are on disk (one fsync serves every waiter)."""
        with self.sync_lock:
            if self.synced >= upto or self.closed:
                return
            target = self.written
            os.fsync(self.fd)
            self.synced = target

    def close(self) -> None:
        with self.sync_lock:
            if not self.closed:
                os.fsync(self.fd)
                self.synced = self.written
                os.close(self.fd)
                self.closed = True


class Spool:
    """The receivers' spool in DIRECTORY, writing into `store`."""

    def __init__(
        self,
        directory: Path,
        store: TelemetryStore,
        *,
        max_pending_bytes: int = 256 * 1024 * 1024,
        flush_s: float = 0.5,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.max_pending_bytes = max_pending_bytes
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: list[Record] = []
        self._pending_bytes = 0
        self._seen: dict[str, float] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_batches = 0
        self.replayed = self._recover()
        numbers = [n for n, _ in self._segments()]
        self._current = Segment(self._segment_path(max(numbers, default=0) + 1),
                                max(numbers, default=0) + 1)

    # receiving

    def accept(self, key: str, tables: dict[str, pa.Table]) -> bool:
        """Spool the rows of one request, durably; False when the key was already taken.

        Raises SpoolFull when the store is too far behind to take more now.
        """
        tables = {name: data for name, data in tables.items() if data.num_rows}
        payload = _encode(key, tables)
        size = sum(t.nbytes for t in tables.values())
        with self._lock:
            if key in self._seen:
                return False
            if self._pending_bytes + size > self.max_pending_bytes and self._pending:
                raise SpoolFull(
                    f"{self._pending_bytes // 1024 // 1024} MiB of received telemetry is still "
                    "on its way into the store"
                )
            segment = self._current
            os.write(segment.fd, payload)
            segment.written += len(payload)
            upto = segment.written
            self._pending.append(Record(key, segment.number, tables, size))
            self._pending_bytes += size
            self._seen[key] = time.monotonic()
            if len(self._seen) > REMEMBER_KEYS_AT_MOST:
                del self._seen[next(iter(self._seen))]
        segment.sync(upto)
        self._wake.set()
        return True

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    # writing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="casebook-spool", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is spooled (waiting up to `timeout` s) and stop; the rest waits on disk."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._current.close()

    def flush(self) -> int:
        """Write everything spooled so far into the store; the number of batches written."""
        with self._flushing:  # one at a time: a second caller waits for the write under way
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            records, self._pending = self._pending, []
            sealed = self._current
            if records:
                number = sealed.number + 1
                self._current = Segment(self._segment_path(number), number)
        if not records:
            return 0
        sealed.close()
        try:
            self._write(records)
        except Exception:
            with self._lock:
                self._pending[:0] = records
            raise
        with self._lock:
            self._pending_bytes -= sum(r.size for r in records)
            oldest = min((r.segment for r in self._pending), default=self._current.number)
        for number, path in self._segments():
            if number < oldest and number <= sealed.number:
                path.unlink(missing_ok=True)
        self.written_batches += len(records)
        return len(records)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            stopping = self._stopping.is_set()
            time.sleep(0 if stopping else self.flush_s)  # gather a batch's worth
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("could not write received telemetry to the store; retrying")
                if stopping:
                    return
                time.sleep(RETRY_S)
                continue
            self._forget_old_keys()
            if stopping:
                return

    def _write(self, records: list[Record]) -> None:
        try:
            self.store.write(_batches(records))
        except SchemaError:
            # One bad batch must not hold back the others: write them one by one and keep
            # the ones the store refuses beside the spool, with the reason.
            for record in records:
                try:
                    self.store.write(_batches([record]))
                except SchemaError as exc:
                    kept = self.directory / f"refused-{record.key[:16]}.spool"
                    kept.write_bytes(_encode(record.key, record.tables))
                    log.error("received batch %s refused by the store (%s); kept in %s",
                              record.key[:16], exc, kept)

    def _forget_old_keys(self) -> None:
        horizon = time.monotonic() - REMEMBER_KEYS_S
        with self._lock:
            for key in [k for k, at in self._seen.items() if at < horizon]:
                del self._seen[key]

    # recovery

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob("segment-*.spool"):
            try:
                found.append((int(path.stem.removeprefix("segment-")), path))
            except ValueError:
                continue
        return sorted(found)

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"segment-{number:012d}.spool"

    def _recover(self) -> int:
        """Queue what a previous run spooled and did not write; the number of such batches."""
        records = [r for number, path in self._segments() for r in _read_segment(path, number)]
        if not records:
            return 0
        stored = self._stored_keys([r.key for r in records])
        now = time.monotonic()
        for record in records:
            self._seen[record.key] = now
            if record.key not in stored:
                self._pending.append(record)
                self._pending_bytes += record.size
        waiting = {r.segment for r in self._pending}
        for number, path in self._segments():
            if number not in waiting:
                path.unlink(missing_ok=True)
        if self._pending:
            log.warning("replaying %d received batch(es) spooled before the last stop",
                        len(self._pending))
        return len(self._pending)

    def _stored_keys(self, keys: list[str]) -> set[str]:
        if MARKER_TABLE not in self.store.tables():
            return set()
        with self.store.connect() as con:
            con.register("wanted", pa.table({"key": keys}))
            rows = con.execute(
                f"select distinct key from raw.{MARKER_TABLE} join wanted using (key)"
            ).fetchall()
        return {r[0] for r in rows}


def _batches(records: list[Record]) -> list[Batch]:
    by_table: dict[str, list[pa.Table]] = {}
    for record in records:
        for name, data in record.tables.items():
            by_table.setdefault(name, []).append(data)
    batches = [_conformed(name, pa.concat_tables(parts)) for name, parts in sorted(by_table.items())]
    now = datetime.now(UTC).replace(tzinfo=None)
    marker = pa.table({
        "ts": pa.array([now] * len(records), MARKER_COLUMNS["ts"]),
        "key": pa.array([r.key for r in records], MARKER_COLUMNS["key"]),
        "tables": pa.array([",".join(sorted(r.tables)) for r in records], MARKER_COLUMNS["tables"]),
        "rows": pa.array([sum(t.num_rows for t in r.tables.values()) for r in records],
                         MARKER_COLUMNS["rows"]),
    })  # fmt: skip
    # The marker goes last: a crash between two files of one write can then only leave data
    # without its marker (written again on replay), never a marker without its data.
    return [*batches, _conformed(MARKER_TABLE, marker)]


def _conformed(table: str, data: pa.Table) -> Batch:
    # The receivers build rows in the schema's exact types and spellings (levels included), so
    # checking them again row by row would only halve the throughput.
    if table in ALREADY_CONFORMED and data.schema.equals(_conformed_empty(table).data.schema):
        return Batch(table, data, _conformed_empty(table).time_column)
    return conform(table, data)


@functools.cache
def _conformed_empty(table: str) -> Batch:
    columns = {"events": EVENT_COLUMNS, MARKER_TABLE: MARKER_COLUMNS}.get(table) or COLUMNS[table]
    return conform(table, pa.table({c: pa.array([], t) for c, t in columns.items()}))


def _encode(key: str, tables: dict[str, pa.Table]) -> bytes:
    parts = []
    for data in tables.values():
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        parts.append(sink.getvalue())
    header = json.dumps(
        {"key": key, "tables": [[n, len(p)] for n, p in zip(tables, parts, strict=True)]}
    ).encode()
    payload = b"".join(parts)
    crc = zlib.crc32(payload, zlib.crc32(header))
    return HEADER.pack(MAGIC, len(header), len(payload), crc) + header + payload


def _read_segment(path: Path, number: int) -> Iterable[Record]:
    data = path.read_bytes()
    position = 0
    while position + HEADER.size <= len(data):
        magic, header_size, payload_size, crc = HEADER.unpack_from(data, position)
        start = position + HEADER.size
        end = start + header_size + payload_size
        if magic != MAGIC or end > len(data):
            break
        header, payload = data[start:start + header_size], data[start + header_size:end]
        if zlib.crc32(payload, zlib.crc32(header)) != crc:
            break
        meta = json.loads(header)
        tables, offset = {}, 0
        for name, size in meta["tables"]:
            tables[name] = pa.ipc.open_stream(payload[offset:offset + size]).read_all()
            offset += size
        yield Record(meta["key"], number, tables, sum(t.nbytes for t in tables.values()))
        position = end
    if position < len(data):
        # A record cut short by a crash was never acknowledged (acks wait for the fsync).
        log.warning("ignoring %d bytes of an unfinished record at the end of %s",
                    len(data) - position, path.name)
        with path.open("r+b") as handle:
            handle.truncate(position)
