"""The results database (DuckDB): every investigation, invocation, finding, cause and narrative."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from casebook.executor.absent_modules import remember_absent
from casebook.executor.errors import UserError
from casebook.executor.record import (
    CauseRecord,
    FindingRecord,
    InvestigationRecord,
    InvocationRecord,
    NarrativeRecord,
)
from casebook.sdk.models import Alert, TimeWindow

remember_absent()  # DuckDB looks for pandas on every statement with parameters

DEFAULT_RESULTS = Path(".casebook") / "results.duckdb"

SCHEMA = """
create table if not exists investigations (
    id varchar primary key, alert_name varchar, fingerprint varchar, alert_status varchar,
    alert json, window_start timestamptz, window_end timestamptz, status varchar,
    runtime varchar, created_at timestamptz, finished_at timestamptz, notes json, packs json);
create table if not exists invocations (
    investigation_id varchar, key varchar, analyzer varchar, params json, status varchar,
    duration_ms double, error varchar, depth integer, parent varchar, queries integer,
    rows_read bigint, wave integer, started_ms double);
create table if not exists findings (
    investigation_id varchar, id varchar, analyzer varchar, invocation varchar, title varchar,
    summary varchar, severity varchar, confidence double, category varchar, entities json,
    onset timestamptz, record json);
create table if not exists causes (
    investigation_id varchar, rank integer, entity_kind varchar, entity_name varchar,
    category varchar, score double, finding_ids json, title varchar);
create table if not exists narratives (
    investigation_id varchar primary key, narrator varchar, model varchar, text varchar,
    verified boolean, tokens_in integer, tokens_out integer, cost_usd double,
    fallback_reason varchar, record json, created_at timestamptz);
create table if not exists feedback (
    investigation_id varchar, finding_id varchar, helpful boolean, comment varchar,
    source varchar, created_at timestamptz);
"""
# Databases made before invocations had a start offset gain the column on first write.
MIGRATIONS = """alter table invocations add column if not exists started_ms double;
alter table investigations add column if not exists sources json;"""


INVOCATION_COLUMNS = ("investigation_id", "key", "analyzer", "params", "status", "duration_ms",
                      "error", "depth", "parent", "queries", "rows_read", "wave", "started_ms")
FINDING_COLUMNS = ("investigation_id", "id", "analyzer", "invocation", "title", "summary",
                   "severity", "confidence", "category", "entities", "onset", "record")
CAUSE_COLUMNS = ("investigation_id", "rank", "entity_kind", "entity_name", "category", "score",
                 "finding_ids", "title")


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...],
            rows: list[list[Any]]) -> None:
    """Insert many rows in one statement (executemany costs a round trip per row)."""
    import pyarrow as pa

    batch = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
    con.register("_casebook_rows", batch)
    try:
        con.execute(f"insert into {table} by name select * from _casebook_rows")
    finally:
        con.unregister("_casebook_rows")


class ResultsStore:
    """A results database at a path (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_RESULTS, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise UserError(f"no results database at {self.path}; run `casebook investigate` "
                            "or `casebook serve` with --db to create one")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise UserError(f"cannot open the results database {self.path}: {exc}. If "
                            "`casebook serve` is using it, read through its API instead") from None
        self._lock = threading.RLock()
        if not read_only:
            self.connection.execute(SCHEMA)
            self.connection.execute(MIGRATIONS)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            con = self.connection
            con.execute("begin transaction")
            try:
                yield con
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")

    def begin(self, record: InvestigationRecord) -> None:
        """Record that an investigation started (so a crash leaves a trace)."""
        with self._transaction() as con:
            self._write_header(con, record)

    def save(self, record: InvestigationRecord) -> None:
        """Store the whole investigation, replacing any earlier version of it."""
        with self._transaction() as con:
            for table in ("invocations", "findings", "causes", "narratives"):
                con.execute(f"delete from {table} where investigation_id = ?", [record.id])
            self._write_header(con, record)
            if record.invocations:
                _insert(con, "invocations", INVOCATION_COLUMNS,
                        [[record.id, i.key, i.analyzer, json.dumps(i.params), i.status,
                          i.duration_ms, i.error, i.depth, i.parent, i.queries, i.rows_read,
                          i.wave, i.started_ms] for i in record.invocations])
            if record.findings:
                _insert(con, "findings", FINDING_COLUMNS,
                        [[record.id, f.id, f.analyzer, f.invocation, f.title, f.summary,
                          f.severity, f.confidence, f.category,
                          json.dumps([e.model_dump() for e in f.entities]), f.onset,
                          f.model_dump_json()] for f in record.findings])
            if record.causes:
                _insert(con, "causes", CAUSE_COLUMNS,
                        [[record.id, c.rank, c.entity.kind, c.entity.name, c.category, c.score,
                          json.dumps(c.finding_ids), c.title] for c in record.causes])
            if record.narrative is not None:
                n = record.narrative
                con.execute(
                    "insert into narratives values (?,?,?,?,?,?,?,?,?,?,?)",
                    [record.id, n.narrator, n.model, n.text, n.verified, n.tokens_in,
                     n.tokens_out, n.cost_usd, n.fallback_reason, n.model_dump_json(),
                     datetime.now(UTC)])

    def _write_header(self, con: duckdb.DuckDBPyConnection, record: InvestigationRecord) -> None:
        con.execute("delete from investigations where id = ?", [record.id])
        con.execute(
            "insert into investigations (id, alert_name, fingerprint, alert_status, alert, "
            "window_start, window_end, status, runtime, created_at, finished_at, notes, packs, "
            "sources) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [record.id, record.alert.name, record.alert.fingerprint, record.alert.status,
             record.alert.model_dump_json(), record.window.start, record.window.end,
             record.status, record.runtime, record.created_at, record.finished_at,
             json.dumps(record.notes), json.dumps(record.packs), json.dumps(record.sources)])

    def unfinished(self) -> list[str]:
        """Ids of investigations stored as `running`."""
        with self._lock:
            rows = self.connection.execute(
                "select id from investigations where status = 'running' order by created_at"
            ).fetchall()
        return [r[0] for r in rows]

    def mark_failed(self, investigation_id: str, reason: str) -> None:
        """Store an investigation that will never finish as `failed`, saying why."""
        record = self.get(investigation_id)
        if record is None or record.status != "running":
            return
        record.status = "failed"
        record.finished_at = datetime.now(UTC)
        record.notes.append(f"The investigation failed: {reason}")
        self.save(record)

    def list(self, limit: int = 100, since: datetime | None = None) -> list[dict[str, Any]]:
        """Investigations, newest first, with their top cause."""
        query = """
            select i.id, i.alert_name, i.status, i.created_at, i.finished_at, i.runtime,
                   c.entity_kind, c.entity_name, c.category, c.score,
                   (select count(*) from findings f where f.investigation_id = i.id) as findings
            from investigations i
            left join causes c on c.investigation_id = i.id and c.rank = 1
            where (? is null or i.created_at >= ?)
            order by i.created_at desc limit ?"""
        with self._lock:
            cursor = self.connection.execute(query, [since, since, limit])
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def get(self, investigation_id: str) -> InvestigationRecord | None:
        """One investigation, whole, or None."""
        with self._lock:
            con = self.connection
            head = con.execute(
                "select id, alert, window_start, window_end, status, runtime, created_at, "
                "finished_at, notes, packs, sources from investigations where id = ?",
                [investigation_id]).fetchone()
            if head is None:
                return None
            invocations = con.execute(
                "select key, analyzer, params, status, duration_ms, error, depth, parent, "
                "queries, rows_read, wave, started_ms from invocations where investigation_id = ? "
                "order by wave, analyzer, key", [investigation_id]).fetchall()
            findings = con.execute(
                "select record from findings where investigation_id = ? "
                "order by cast(substr(id, 2) as integer)", [investigation_id]).fetchall()
            causes = con.execute(
                "select rank, entity_kind, entity_name, category, score, finding_ids, title "
                "from causes where investigation_id = ? order by rank",
                [investigation_id]).fetchall()
            narrative = con.execute(
                "select record from narratives where investigation_id = ?",
                [investigation_id]).fetchone()
        return InvestigationRecord(
            id=head[0], alert=Alert.model_validate_json(head[1]),
            window=TimeWindow(start=head[2], end=head[3]), status=head[4], runtime=head[5],
            created_at=head[6], finished_at=head[7], notes=json.loads(head[8] or "[]"),
            packs=json.loads(head[9] or "[]"), sources=json.loads(head[10] or "[]"),
            invocations=[InvocationRecord(
                key=r[0], analyzer=r[1], params=json.loads(r[2] or "{}"), status=r[3],
                duration_ms=r[4], error=r[5], depth=r[6], parent=r[7], queries=r[8],
                rows_read=r[9], wave=r[10], started_ms=r[11]) for r in invocations],
            findings=[FindingRecord.model_validate_json(r[0]) for r in findings],
            causes=[CauseRecord(rank=r[0], entity={"kind": r[1], "name": r[2]}, category=r[3],
                                score=r[4], finding_ids=json.loads(r[5]), title=r[6] or "")
                    for r in causes],
            narrative=NarrativeRecord.model_validate_json(narrative[0]) if narrative else None,
        )

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, held for a read (the serving process shares it between threads)."""
        with self._lock:
            yield self.connection

    def seen_before(self, record: InvestigationRecord, days: float = 30.0,
                    limit: int = 10) -> list[dict[str, Any]]:
        """Earlier investigations of the same alert whose top cause was the same (entity and
        category) within `days` before this one, newest first, with their feedback."""
        if not record.causes:
            return []
        top = record.causes[0]
        since = record.created_at - timedelta(days=days)
        with self._lock:
            rows = self.connection.execute(
                """select i.id, i.created_at, i.status,
                          count(fb.helpful) filter (where fb.helpful) as helpful,
                          count(fb.helpful) filter (where not fb.helpful) as not_helpful
                   from investigations i
                   join causes c on c.investigation_id = i.id and c.rank = 1
                   left join feedback fb on fb.investigation_id = i.id
                   where i.alert_name = ? and i.id <> ? and i.created_at >= ?
                     and i.created_at < ? and c.entity_kind = ? and c.entity_name = ?
                     and c.category = ?
                   group by i.id, i.created_at, i.status
                   order by i.created_at desc limit ?""",
                [record.alert.name, record.id, since, record.created_at, top.entity.kind,
                 top.entity.name, top.category, limit]).fetchall()
        return [
            {"id": r[0], "created_at": r[1].astimezone(UTC).isoformat(), "status": r[2],
             "alert_name": record.alert.name,
             "cause": {"entity": top.entity.model_dump(), "category": top.category},
             "helpful": r[3], "not_helpful": r[4], "feedback": _feedback_words(r[3], r[4]),
             "report_url": f"/investigations/{r[0]}"}
            for r in rows
        ]

    def add_feedback(self, investigation_id: str, helpful: bool, *, finding_id: str | None = None,
                     comment: str = "", source: str = "cli") -> None:
        """Record whether an investigation (or one finding of it) helped."""
        with self._lock:
            known = self.connection.execute(
                "select count(*) from investigations where id = ?", [investigation_id]).fetchone()
            if not known or not known[0]:
                raise UserError(f"no investigation '{investigation_id}' in {self.path}; "
                                "`casebook coverage` or GET /api/investigations lists them")
            if finding_id is not None:
                found = self.connection.execute(
                    "select count(*) from findings where investigation_id = ? and id = ?",
                    [investigation_id, finding_id]).fetchone()
                if not found or not found[0]:
                    raise UserError(f"investigation '{investigation_id}' has no finding "
                                    f"'{finding_id}'")
            self.connection.execute(
                "insert into feedback values (?,?,?,?,?,?)",
                [investigation_id, finding_id, helpful, comment, source, datetime.now(UTC)])


def _feedback_words(helpful: int, not_helpful: int) -> str:
    if not helpful and not not_helpful:
        return "no feedback"
    parts = [f"{helpful} helpful" if helpful else "", f"{not_helpful} not helpful"
             if not_helpful else ""]
    return ", ".join(p for p in parts if p)
