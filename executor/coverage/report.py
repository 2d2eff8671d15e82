"""Building the coverage report from the results database, and writing it out."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from casebook.executor.coverage import queries
from casebook.executor.coverage.model import (
    AlertCoverage,
    AnalyzerCoverage,
    CauseCount,
    Comment,
    CoverageReport,
    Day,
    FeedbackSummary,
    Figure,
    NarrationSpend,
    Period,
    UncoveredAlert,
)
from casebook.executor.errors import UserError
from casebook.sdk.registry import Registry

DEFAULT_DAYS = 7


def parse_moment(text: str, *, option: str, end: bool = False) -> datetime:
    """A --since/--until value: a day (YYYY-MM-DD) or an ISO time; naive times are UTC.

    A day given as the end of a period includes that whole day.
    """
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not a date; give a day like 2026-03-09 or a time "
            "like 2026-03-09T12:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def period_for(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> Period:
    """The reporting period; by default the last 7 days."""
    until = until or now or datetime.now(UTC)
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise UserError(
            f"--since {since:%Y-%m-%d %H:%M} is not before --until "
            f"{until:%Y-%m-%d %H:%M}; give a start earlier than the end"
        )
    return Period(since, until)


def catch_all_analyzers(registry: Registry) -> list[str]:
    """Analyzers that run on every alert: no matchers, no predicate, nothing taken from it."""
    return [s.name for s in registry if not s.matchers and s.predicate is None and not s.params]


def build_report(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    *,
    registry: Registry | None = None,
    database: str = "",
    notes: Sequence[str] = (),
) -> CoverageReport:
    """The coverage report for the period, every figure from the stored records."""
    _check_database(con, database)
    con.execute("set TimeZone = 'UTC'")
    catch_all = catch_all_analyzers(registry) if registry is not None else []
    sql = _adapted(con)

    def rows(query: str, over: Period = period) -> list[dict[str, Any]]:
        return queries.fetch(con, sql(query), over.start, over.end, catch_all)

    previous = period.previous()
    head, before = rows(queries.HEADLINE)[0], rows(queries.HEADLINE, previous)[0]
    previous_volume = {r["alert_name"]: r["volume"] for r in rows(queries.ALERTS, previous)}
    alerts = tuple(
        AlertCoverage(
            name=r["alert_name"],
            volume=r["volume"],
            previous_volume=previous_volume.get(r["alert_name"], 0),
            covered=r["covered"],
            with_finding=r["with_finding"],
            median_first_finding_ms=r["median_first_finding_ms"],
            covered_without_finding=r["covered_without_finding"],
        )
        for r in rows(queries.ALERTS)
    )
    known = {s.name: s for s in registry} if registry is not None else {}
    analyzers = tuple(
        AnalyzerCoverage(
            name=r["analyzer"],
            applicable=r["applicable"],
            ran=r["ran"],
            found_in=r["found_in"],
            invocations=r["invocations"],
            found=r["found"],
            nothing=r["nothing"],
            skipped=r["skipped"],
            error=r["error"],
            timeout=r["timeout"],
            p50_ms=r["p50_ms"],
            p95_ms=r["p95_ms"],
            helpful=r["helpful"],
            not_helpful=r["not_helpful"],
            catch_all=r["analyzer"] in catch_all,
            registered=registry is None or r["analyzer"] in known,
            owner=known[r["analyzer"]].owner if r["analyzer"] in known else None,
            missing_data=r["missing_data"] or 0,
            missing_reason=_missing(r["missing_reason"]),
        )
        for r in rows(queries.ANALYZERS)
    )
    applied = {a.name for a in analyzers}
    causes = tuple(
        CauseCount(
            category=r["category"],
            entity=r["entity"],
            top=r["top"],
            top3=r["top3"],
            alerts=tuple(r["alerts"]),
        )
        for r in rows(queries.CAUSES)
    )
    categories = Counter[str]()
    for cause in causes:
        categories[cause.category] += cause.top
    narration = tuple(NarrationSpend(**r) for r in rows(queries.NARRATION))
    previous_narration = rows(queries.NARRATION, previous)
    claude = any(n.narrator != "deterministic" for n in narration) or any(
        r["narrator"] != "deterministic" for r in previous_narration
    )
    all_notes = [*notes, *_period_notes(con, period, head, before)]
    return CoverageReport(
        database=database,
        period=period,
        generated_at=datetime.now(UTC),
        investigations=head["investigations"],
        previous_investigations=before["investigations"],
        figures=_figures(head, before, claude),
        alerts=alerts,
        analyzers=analyzers,
        never_applied=tuple(sorted(n for n in known if n not in applied)),
        uncovered=tuple(
            UncoveredAlert(
                name=r["alert_name"],
                uncovered=r["uncovered"],
                volume=r["volume"],
                label_keys=tuple(k for k in (r["label_keys"] or []) if k != "alertname"),
                reason=r["reason"] or "no analyzer's matchers accept it",
            )
            for r in rows(queries.UNCOVERED)
        ),
        unexplained=tuple(
            sorted(
                (a for a in alerts if a.covered and not a.with_finding),
                key=lambda a: (-a.volume, a.name),
            )
        ),
        causes=causes,
        days=_every_day(period, [Day(**r) for r in rows(queries.DAYS)]),
        categories=tuple(
            sorted(
                ((c, n) for c, n in categories.items() if n), key=lambda item: (-item[1], item[0])
            )
        ),
        feedback=_feedback(rows(queries.FEEDBACK)),
        narration=narration,
        first_day=head["first_at"],
        last_day=head["last_at"],
        notes=tuple(all_notes),
        owners={name: spec.owner for name, spec in known.items() if spec.owner},
    )


def _missing(error: str | None) -> str | None:
    """`missing data: metric 'x' (declared in reads=); ...` -> `metric 'x'`."""
    if not error:
        return None
    return error.removeprefix("missing data: ").split(" (declared", 1)[0]


def _figures(now: dict[str, Any], before: dict[str, Any], claude: bool) -> tuple[Figure, ...]:
    def figure(label: str, key: str, kind: str = "count", better: str = "") -> Figure:
        value, previous = now[key], before[key]
        if kind == "count":
            value, previous = value or 0, (previous or 0) if before["investigations"] else None
        if kind == "share" and not now["investigations"]:
            value = None
        return Figure(label, value, previous, kind, better)

    figures = [
        figure("Alerts investigated", "investigations"),
        figure("Alert names", "alert_names"),
        figure("Covered by an analyzer written for them", "covered_share", "share", "up"),
        figure("With a finding", "finding_share", "share", "up"),
        figure("Median time to first finding", "median_first_finding_ms", "ms", "down"),
        figure("Alerts no analyzer covers", "uncovered", "count", "down"),
        figure("Analyzer invocations", "invocations"),
        figure("Errors and timeouts (share of invocations run)", "failure_share", "share", "down"),
        figure("Feedback marked helpful", "helpful_share", "share", "up"),
    ]
    if claude:
        figures.append(figure("Narration cost", "cost_usd", "usd", "down"))
    return tuple(figures)


def _every_day(period: Period, days: list[Day]) -> tuple[Day, ...]:
    """One entry per calendar day of the period, zero where nothing fired."""
    known = {d.day: d for d in days}
    first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
    count = (last - first).days + 1
    return tuple(
        known.get(first + timedelta(days=i)) or Day(first + timedelta(days=i), 0, 0)
        for i in range(count)
    )


def _feedback(rows: list[dict[str, Any]]) -> FeedbackSummary:
    helpful = sum(1 for r in rows if r["helpful"])
    return FeedbackSummary(
        helpful=helpful,
        not_helpful=len(rows) - helpful,
        on_findings=sum(1 for r in rows if r["finding_id"]),
        comments=tuple(
            Comment(
                investigation_id=r["investigation_id"],
                alert_name=r["alert_name"],
                finding_id=r["finding_id"],
                analyzer=r["analyzer"],
                helpful=r["helpful"],
                comment=r["comment"],
                created_at=r["created_at"],
            )
            for r in rows
            if r["comment"]
        ),
    )


def _period_notes(
    con: duckdb.DuckDBPyConnection, period: Period, head: dict[str, Any], before: dict[str, Any]
) -> list[str]:
    notes = []
    if not head["investigations"]:
        first, last = con.execute(
            "select min(created_at), max(created_at) from investigations"
        ).fetchone() or (None, None)
        if last is None:
            notes.append(
                "The results database holds no investigations yet: run `casebook "
                "investigate ALERT.json --db DB` or `casebook serve --db DB`, or "
                "`casebook demo` for an example week."
            )
        else:
            hint = (last - timedelta(days=DEFAULT_DAYS - 1)).date()
            notes.append(
                f"No investigations in this period. The database holds "
                f"investigations from {first:%Y-%m-%d} to {last:%Y-%m-%d}; try "
                f"`--since {hint} --until {last.date()}`."
            )
        return notes
    span = head["last_at"] - head["first_at"]
    if span < timedelta(days=1) and period.days > 1:
        notes.append(
            f"All {head['investigations']} investigations of this period are from "
            f"{head['first_at']:%Y-%m-%d}: the figures describe less than a day."
        )
    if not before["investigations"]:
        notes.append(
            f"No investigations in the previous period ({period.previous().label}), "
            "so the week-over-week changes read 'new'."
        )
    return notes


def _check_database(con: duckdb.DuckDBPyConnection, database: str) -> None:
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main'"
        ).fetchall()
    }
    missing = {
        "investigations",
        "invocations",
        "findings",
        "causes",
        "narratives",
        "feedback",
    } - tables
    if missing:
        raise UserError(
            f"{database or 'the database'} is not a casebook results database "
            f"(it has no {', '.join(sorted(missing))} table); point --db at the "
            "file `casebook investigate --db` or `casebook serve --db` wrote"
        )


def _adapted(con: duckdb.DuckDBPyConnection):
    """The queries as this database can run them (older ones lack invocation start offsets)."""
    has_offsets = con.execute(
        "select count(*) from information_schema.columns where table_name = 'invocations' "
        "and column_name = 'started_ms'"
    ).fetchone()[0]
    if has_offsets:
        return lambda sql: sql
    return lambda sql: sql.replace("c.started_ms", "cast(null as double)")


def load_coverage_registry(
    con: duckdb.DuckDBPyConnection, packs: Sequence[str], period: Period
) -> tuple[Registry, list[str]]:
    """The analyzers that exist: built-in, entry points, --pack, and packs investigations used."""
    from casebook.executor.pipeline import build_registry

    registry = build_registry(packs)
    recorded = con.execute(
        "select distinct packs from investigations where created_at >= ? and created_at < ?",
        [period.start, period.end],
    ).fetchall()
    notes = []
    for pack in sorted({p for (raw,) in recorded for p in json.loads(raw or "[]")}):
        if pack in registry.packs:
            continue
        before = len(registry.problems)
        registry.load(pack)
        if len(registry.problems) > before:
            notes.append(
                f"The pack {pack}, which investigations of this period used, cannot "
                "be loaded here, so its analyzers are missing from 'never applied'."
            )
    return registry, notes


def write_coverage(
    db: str | Path,
    *,
    console=None,
    html: Path | None = None,
    markdown: Path | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    packs: Sequence[str] = (),
    now: datetime | None = None,
) -> CoverageReport:
    """Build the report from the results database; write HTML/Markdown; print a summary."""
    from casebook.executor.results import ResultsStore

    period = period_for(since, until, now)
    with ResultsStore(db, read_only=True) as store:
        _check_database(store.connection, str(db))
        registry, notes = load_coverage_registry(store.connection, packs, period)
        report = build_report(
            store.connection, period, registry=registry, database=str(db), notes=notes
        )
    if html is not None:
        from casebook.executor.coverage.html import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report))
    if markdown is not None:
        from casebook.executor.coverage.markdown import render_markdown

        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(render_markdown(report))
    if console is not None:
        from casebook.executor.coverage.terminal import render_summary

        render_summary(report, console)
    return report


__all__ = ["build_report", "parse_moment", "period_for", "write_coverage"]
