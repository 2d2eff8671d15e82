"""The scheduled coverage report: `coverage: {every: week, at: "mon 09:00", sinks: [...]}`.

Each scheduled moment names one period (the week, or day, that ends then). Its messages go into
the outbox under a key made from that moment, so the outbox is the record of which periods were
sent: a restart, or a second look within the same period, finds the key and sends nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from casebook.executor.config.schema import CoverageSchedule
from casebook.executor.coverage.model import CoverageReport, Period
from casebook.executor.delivery.messages import Message


def latest_moment(schedule: CoverageSchedule, now: datetime) -> datetime:
    """The last scheduled moment at or before `now` (UTC)."""
    now = now.astimezone(UTC)
    hour, minute = schedule.hour_minute
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if schedule.every == "week":
        moment -= timedelta(days=(now.weekday() - schedule.weekday) % 7)
    step = timedelta(days=7 if schedule.every == "week" else 1)
    return moment - step if moment > now else moment


def period_ending(schedule: CoverageSchedule, moment: datetime) -> Period:
    """The period a report sent at `moment` covers: the week (or day) before it."""
    length = timedelta(days=7 if schedule.every == "week" else 1)
    return Period(moment - length, moment)


def coverage_key(moment: datetime) -> str:
    return f"coverage-{moment:%Y-%m-%dT%H%MZ}"


def coverage_message(report: CoverageReport, moment: datetime, *, public_url: str,
                     markdown: str) -> Message:
    """The weekly report as a message: headline figures, the Markdown, a link to the page."""
    period = report.period
    query = urlencode({"since": period.start.isoformat(), "until": period.end.isoformat(),
                       "format": "html"})
    url = f"{public_url}/api/coverage?{query}" if public_url else ""
    figures = [{"label": f.label, "value": f.text, "change": f.change} for f in report.figures]
    text = "\n".join(f"• {f['label']}: *{f['value']}* ({f['change']})" for f in figures)
    recurring = [r for r in report.causes if r.top >= 2]
    if recurring:
        text += "\n*Recurring top causes*: " + ", ".join(
            f"{c.category} on {c.entity} ×{c.top}" for c in recurring[:5])
    return Message(
        kind="coverage",
        key=coverage_key(moment),
        title=f"casebook coverage report, {period.label}",
        payload={
            "kind": "coverage",
            "period": {"since": period.start.isoformat(), "until": period.end.isoformat()},
            "investigations": report.investigations,
            "figures": figures,
            "text": text,
            "markdown": markdown,
            "report_url": url,
        },
        markdown=markdown,
        report_url=url,
    )
