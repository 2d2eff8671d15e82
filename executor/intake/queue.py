"""The durable alert queue: a SQLite file (WAL, fsync on commit) next to the results database.

An alert is committed before its webhook is answered; a unique key on (fingerprint, status,
startsAt) drops re-sent alerts; rows go queued -> running -> done (or failed). A row left
`running` by a crash goes back to `queued` on start and keeps its investigation id, so the re-run
replaces what the first run may have stored instead of adding a second investigation.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casebook.executor.errors import UserError
from casebook.executor.intake.dedup import Action, action_for, dedup_key
from casebook.sdk.models import Alert

SCHEMA = """
create table if not exists alerts (
    id integer primary key autoincrement,
    fingerprint text not null,
    status text not null,
    starts_at text not null,
    request text not null default '',  -- '' for webhooks; a token per manual request
    starts_epoch real not null,
    action text not null,
    alert text not null,
    source text not null,
    investigation_id text unique,  -- chosen on arrival, so a re-run replaces, never duplicates
    related text,  -- the investigation a resolved or flapping alert is recorded against
    received_at real not null,
    state text not null default 'queued',  -- queued, running, done, failed
    outcome text,
    attempts integer not null default 0,
    started_at real,
    finished_at real,
    error text,
    unique (fingerprint, status, starts_at, request)
);
create index if not exists alerts_by_state on alerts (state, id);
create index if not exists alerts_by_fingerprint on alerts (fingerprint, action, starts_epoch);
create index if not exists alerts_by_related on alerts (related);
"""
WAITING = ("queued", "running")
# A row that was running when the process died this many times is given up on: it is more
# likely to be what kills the process than a victim of it.
MAX_ATTEMPTS = 3


class QueueFull(UserError):
    """No room for more alerts; the sender should retry later."""


@dataclass(frozen=True)
class QueuedAlert:
    """One queue row as the worker sees it."""

    id: int
    action: Action
    alert: Alert
    source: str
    investigation_id: str | None
    related: str | None
    received_at: float
    attempts: int


@dataclass(frozen=True)
class Receipt:
    """What one alert of a request became; the webhook answer lists these."""

    fingerprint: str
    status: str
    starts_at: str
    action: str
    investigation_id: str | None
    duplicate: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def new_investigation_id(moment: float) -> str:
    # 40 random bits: bursts of thousands of alerts a second never collide in practice, and
    # the unique column turns the one-in-a-million collision into a retried request.
    return f"inv-{datetime.fromtimestamp(moment, UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(5)}"


class AlertQueue:
    """The queue file at `path`, created on first use."""

    def __init__(self, path: str | Path, capacity: int = 10_000):
        self.path = Path(path)
        self.capacity = capacity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=10, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = full")  # fsync the WAL at every commit
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"cannot open the alert queue {self.path}: {exc}; move the file "
                "away to start with an empty queue"
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

    # arrival

    def accept(
        self, alerts: Sequence[Alert], source: str, *, manual: bool = False, cooldown_s: float = 0.0
    ) -> list[Receipt]:
        """Commit the new alerts of one request (all or none) and say what each became.

        Raises QueueFull, committing nothing, when they would not fit.
        """
        now = time.time()
        request = secrets.token_hex(8) if manual else ""
        receipts: list[Receipt] = []
        with self._write() as db:
            added = 0
            for alert in alerts:
                key = dedup_key(alert)
                existing = db.execute(
                    "select action, investigation_id, related from alerts where fingerprint = ? "
                    "and status = ? and starts_at = ? and request = ?",
                    [key.fingerprint, key.status, key.starts_at, request],
                ).fetchone()
                if existing is not None:
                    receipts.append(
                        Receipt(
                            key.fingerprint,
                            key.status,
                            key.starts_at,
                            existing["action"],
                            existing["investigation_id"] or existing["related"],
                            duplicate=True,
                        )
                    )
                    continue
                action, related = self._triage(db, alert, manual, cooldown_s)
                investigation_id = (
                    new_investigation_id(now) if action is Action.INVESTIGATE else None
                )
                db.execute(
                    "insert into alerts (fingerprint, status, starts_at, request, starts_epoch, "
                    "action, alert, source, investigation_id, related, received_at) "
                    "values (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        key.fingerprint,
                        key.status,
                        key.starts_at,
                        request,
                        alert.starts_at.timestamp(),
                        str(action),
                        alert.model_dump_json(),
                        source,
                        investigation_id,
                        related,
                        now,
                    ],
                )
                added += 1
                receipts.append(
                    Receipt(
                        key.fingerprint,
                        key.status,
                        key.starts_at,
                        str(action),
                        investigation_id or related,
                        duplicate=False,
                    )
                )
            if added:
                waiting = db.execute(
                    "select count(*) from alerts where state in ('queued', 'running')"
                ).fetchone()[0]
                if waiting > self.capacity:
                    raise QueueFull(
                        f"the alert queue is full: {waiting - added} alerts are waiting and this "
                        f"request adds {added}, over the capacity of {self.capacity}; nothing "
                        "from it was kept, send it again later (Alertmanager retries on its own)"
                    )
        return receipts

    def _triage(
        self, db: sqlite3.Connection, alert: Alert, manual: bool, cooldown_s: float
    ) -> tuple[Action, str | None]:
        if manual:
            return Action.INVESTIGATE, None
        key = dedup_key(alert)
        if alert.status == "resolved":
            match = db.execute(
                "select investigation_id from alerts where fingerprint = ? and action = ? "
                "order by (starts_at = ?) desc, id desc limit 1",
                [key.fingerprint, str(Action.INVESTIGATE), key.starts_at],
            ).fetchone()
            return Action.RESOLVE, match[0] if match else None
        nearest = db.execute(
            "select starts_epoch, investigation_id from alerts where fingerprint = ? "
            "and action = ? and request = '' order by abs(starts_epoch - ?) limit 1",
            [key.fingerprint, str(Action.INVESTIGATE), alert.starts_at.timestamp()],
        ).fetchone()
        earlier = datetime.fromtimestamp(nearest[0], UTC) if nearest else None
        action = action_for(alert, earlier, cooldown_s)
        return action, nearest[1] if action is Action.COOLDOWN else None

    # the worker's side

    def claim(self, busy: Collection[str] = ()) -> QueuedAlert | None:
        """The oldest queued alert, now marked running; None when there is none.

        `busy` names alert groups (alert names) being investigated right now: the oldest alert
        of another group goes first, so one noisy alert cannot hold every investigation slot.
        """
        busy = sorted(busy)
        marks = ", ".join("?" for _ in busy)
        other_group = (f"and json_extract(alert, '$.name') not in ({marks}) " if busy else "")
        with self._write() as db:
            row = db.execute(
                "update alerts set state = 'running', attempts = attempts + 1, started_at = ? "
                "where id = coalesce("
                f"(select id from alerts where state = 'queued' {other_group}order by id limit 1),"
                " (select id from alerts where state = 'queued' order by id limit 1)) "
                "returning *",
                [time.time(), *busy],
            ).fetchone()
        if row is None:
            return None
        return QueuedAlert(
            id=row["id"],
            action=Action(row["action"]),
            alert=Alert.model_validate_json(row["alert"]),
            source=row["source"],
            investigation_id=row["investigation_id"],
            related=row["related"],
            received_at=row["received_at"],
            attempts=row["attempts"],
        )

    def finish(
        self, item_id: int, outcome: str, *, failed: bool = False, error: str | None = None
    ) -> None:
        """Mark a claimed row done (or failed), with what came of it."""
        with self._write() as db:
            db.execute(
                "update alerts set state = ?, outcome = ?, error = ?, finished_at = ? where id = ?",
                ["failed" if failed else "done", outcome, error, time.time(), item_id],
            )

    def recover(self) -> tuple[int, int]:
        """Put rows a dead process left running back in the queue: (requeued, given up)."""
        with self._write() as db:
            given_up = db.execute(
                "update alerts set state = 'failed', outcome = 'failed', finished_at = ?, "
                "error = ? where state = 'running' and attempts >= ?",
                [
                    time.time(),
                    f"the service stopped {MAX_ATTEMPTS} times while investigating "
                    "this alert; it is not tried again",
                    MAX_ATTEMPTS,
                ],
            ).rowcount
            requeued = db.execute(
                "update alerts set state = 'queued' where state = 'running'"
            ).rowcount
        return requeued, given_up

    def prune(self, older_than_s: float) -> int:
        """Forget finished rows older than this (their alerts may then be investigated anew)."""
        with self._write() as db:
            return db.execute(
                "delete from alerts where state in ('done', 'failed') and finished_at < ?",
                [time.time() - older_than_s],
            ).rowcount

    # reading

    def depth(self) -> int:
        """Alerts accepted and not yet finished."""
        return self._read("select count(*) from alerts where state in ('queued', 'running')")[0][0]

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        rows = self._read("select state, count(*) from alerts group by state")
        return {state: 0 for state in ("queued", "running", "done", "failed")} | {
            r[0]: r[1] for r in rows
        }

    def oldest_wait_s(self) -> float:
        """How long the oldest queued alert has waited (0 when none waits)."""
        oldest = self._read("select min(received_at) from alerts where state = 'queued'")[0][0]
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts waiting to be investigated, oldest first."""
        rows = self._read(
            "select investigation_id, alert, state, received_at from alerts where state in "
            "('queued', 'running') and action = ? order by id limit ?",
            [str(Action.INVESTIGATE), limit],
        )
        return [
            {
                "id": r["investigation_id"],
                "alert_name": Alert.model_validate_json(r["alert"]).name,
                "state": r["state"],
                "received_at": datetime.fromtimestamp(r["received_at"], UTC).isoformat(),
            }
            for r in rows
        ]

    def state_of(self, investigation_id: str) -> str | None:
        """queued, running, done or failed for an investigation id the queue knows."""
        rows = self._read("select state from alerts where investigation_id = ?", [investigation_id])
        return rows[0][0] if rows else None

    def recorded_against(self, investigation_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per investigation: whether its alert resolved, and how often it fired again."""
        if not investigation_ids:
            return {}
        marks = ",".join("?" * len(investigation_ids))
        rows = self._read(
            f"select related, action, count(*), max(json_extract(alert, '$.ends_at')), "
            f"max(received_at) from alerts where related in ({marks}) and state = 'done' "
            "group by related, action",
            list(investigation_ids),
        )
        out: dict[str, dict[str, Any]] = {}
        for related, action, count, ended, received in rows:
            entry = out.setdefault(related, {"resolved_at": None, "repeats": 0})
            if action == Action.RESOLVE:
                entry["resolved_at"] = ended or datetime.fromtimestamp(received, UTC).isoformat()
            else:
                entry["repeats"] = count
        return out
