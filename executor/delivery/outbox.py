"""The durable outbox: every message to a sink is committed here (SQLite, WAL, fsync on commit)
before anything is sent, and sent until it succeeds or runs out of attempts.

Each row has an idempotency key (investigation and sink, or report period and sink) that is
unique: putting the same message in twice keeps the first, so an investigation redone after a
crash, or a weekly report reconsidered after a restart, is never delivered twice. The key also
travels as the `Idempotency-Key` header, so a receiver can drop a resend when the process died
between the receiver's answer and the row being marked delivered.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from casebook.executor.errors import UserError

SCHEMA = """
create table if not exists deliveries (
    id integer primary key autoincrement,
    key text not null unique,
    investigation_id text,  -- null for scheduled reports
    sink text not null,
    kind text not null,  -- investigation, coverage, notification, ticket
    body blob not null,  -- the exact bytes sent (and signed)
    content_type text not null,
    name text not null default '',  -- the file name, for sinks that write files
    state text not null default 'pending',  -- pending, delivered, failed
    attempts integer not null default 0,
    next_at real not null,
    created_at real not null,
    delivered_at real,
    last_error text
);
create index if not exists deliveries_due on deliveries (state, next_at);
create index if not exists deliveries_by_investigation on deliveries (investigation_id);
create table if not exists attempts (
    delivery_id integer not null,
    at real not null,
    outcome text not null,  -- delivered, retry, failed
    detail text not null default ''
);
create index if not exists attempts_by_delivery on attempts (delivery_id);
"""
State = Literal["pending", "delivered", "failed"]


def outbox_path_for(db: str | Path) -> Path:
    """The outbox file next to a results database: results.duckdb -> results.outbox.db."""
    db = Path(db)
    return db.with_name(f"{db.stem}.outbox.db")


@dataclass(frozen=True)
class Delivery:
    """One message to one sink, as the dispatcher sends it."""

    id: int
    key: str
    investigation_id: str | None
    sink: str
    kind: str
    body: bytes
    content_type: str
    name: str
    attempts: int


@dataclass(frozen=True)
class Backoff:
    """Exponential: base, 2 x base, 4 x base, ... capped at `cap`; `attempts` tries in all."""

    base_s: float = 10.0
    cap_s: float = 3600.0
    attempts: int = 8

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))


class Outbox:
    """The outbox file at `path`, created on first use; safe to share between threads."""

    def __init__(self, path: str | Path, backoff: Backoff | None = None):
        self.path = Path(path)
        self.backoff = backoff or Backoff()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=10, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = full")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"cannot open the delivery outbox {self.path}: {exc}; move the file away to "
                "start with an empty outbox (undelivered messages in it are then lost)"
            ) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def put(
        self,
        key: str,
        *,
        sink: str,
        kind: str,
        body: bytes,
        content_type: str,
        investigation_id: str | None = None,
        name: str = "",
        now: float | None = None,
    ) -> bool:
        """Commit one message; False when a message with this key is already here."""
        now = time.time() if now is None else now
        with self._write() as db:
            inserted = db.execute(
                "insert into deliveries (key, investigation_id, sink, kind, body, content_type, "
                "name, next_at, created_at) values (?,?,?,?,?,?,?,?,?) on conflict (key) do nothing",
                [key, investigation_id, sink, kind, body, content_type, name, now, now],
            ).rowcount
        return bool(inserted)

    def has(self, key: str) -> bool:
        return bool(self._read("select 1 from deliveries where key = ?", [key]))

    def due(self, now: float | None = None, limit: int = 20) -> list[Delivery]:
        """Pending messages whose time has come, oldest first."""
        now = time.time() if now is None else now
        rows = self._read(
            "select * from deliveries where state = 'pending' and next_at <= ? "
            "order by next_at, id limit ?",
            [now, limit],
        )
        return [
            Delivery(
                id=r["id"], key=r["key"], investigation_id=r["investigation_id"], sink=r["sink"],
                kind=r["kind"], body=bytes(r["body"]), content_type=r["content_type"],
                name=r["name"], attempts=r["attempts"],
            )
            for r in rows
        ]

    def next_due_in(self, now: float | None = None) -> float | None:
        """Seconds until the next pending message is due (None when none is pending)."""
        now = time.time() if now is None else now
        first = self._read("select min(next_at) from deliveries where state = 'pending'")[0][0]
        return None if first is None else max(0.0, first - now)

    def delivered(self, delivery_id: int, detail: str = "", now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                "update deliveries set state = 'delivered', attempts = attempts + 1, "
                "delivered_at = ?, last_error = null where id = ?",
                [now, delivery_id],
            )
            db.execute("insert into attempts values (?,?,?,?)", [delivery_id, now, "delivered",
                                                                 detail])

    def failed(
        self, delivery_id: int, error: str, *, permanent: bool = False, now: float | None = None
    ) -> State:
        """Count a failed attempt; the message waits for its next try, or is given up on."""
        now = time.time() if now is None else now
        with self._write() as db:
            attempts = db.execute(
                "update deliveries set attempts = attempts + 1, last_error = ? where id = ? "
                "returning attempts",
                [error, delivery_id],
            ).fetchone()[0]
            give_up = permanent or attempts >= self.backoff.attempts
            state: State = "failed" if give_up else "pending"
            db.execute(
                "update deliveries set state = ?, next_at = ? where id = ?",
                [state, now + self.backoff.delay(attempts), delivery_id],
            )
            db.execute("insert into attempts values (?,?,?,?)",
                       [delivery_id, now, "failed" if give_up else "retry", error])
        return state

    def log_for(self, investigation_id: str) -> list[dict[str, Any]]:
        """The delivery log of one investigation: each message with its attempts."""
        rows = self._read(
            "select id, key, sink, kind, state, attempts, created_at, delivered_at, last_error, "
            "next_at from deliveries where investigation_id = ? order by id",
            [investigation_id],
        )
        return [self._entry(r) for r in rows]

    def log_of(self, key: str) -> dict[str, Any] | None:
        rows = self._read(
            "select id, key, sink, kind, state, attempts, created_at, delivered_at, last_error, "
            "next_at from deliveries where key = ?",
            [key],
        )
        return self._entry(rows[0]) if rows else None

    def _entry(self, row: sqlite3.Row) -> dict[str, Any]:
        tries = self._read(
            "select at, outcome, detail from attempts where delivery_id = ? order by at",
            [row["id"]],
        )
        return {
            "sink": row["sink"],
            "kind": row["kind"],
            "idempotency_key": row["key"],
            "state": row["state"],
            "attempts": row["attempts"],
            "created_at": _iso(row["created_at"]),
            "delivered_at": _iso(row["delivered_at"]),
            "next_attempt_at": _iso(row["next_at"]) if row["state"] == "pending" else None,
            "last_error": row["last_error"],
            "log": [{"at": _iso(t["at"]), "outcome": t["outcome"], "detail": t["detail"]}
                    for t in tries],
        }

    def prune(self, older_than_s: float, now: float | None = None) -> int:
        """Forget finished messages (delivered or given up) older than this; pending ones stay.

        Keys of older periods are no longer needed: a schedule only looks at its latest moment.
        """
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                "delete from attempts where delivery_id in (select id from deliveries where "
                "state <> 'pending' and created_at < ?)",
                [now - older_than_s],
            )
            return db.execute(
                "delete from deliveries where state <> 'pending' and created_at < ?",
                [now - older_than_s],
            ).rowcount

    def counts(self) -> dict[str, int]:
        rows = self._read("select state, count(*) from deliveries group by state")
        return {"pending": 0, "delivered": 0, "failed": 0} | {r[0]: r[1] for r in rows}


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()
