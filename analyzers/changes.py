"""Changes: deploys, config pushes and flag flips shortly before the alert."""

from __future__ import annotations

from datetime import datetime

from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer, quoted
from casebook.sdk.models import utc

CHANGE_KINDS = ("deploy", "config", "flag")
CATEGORY = {"deploy": "deploy", "config": "config", "flag": "config"}

CHANGES_SQL = """
select ts, kind, service, summary from events
where kind in ('deploy', 'config', 'flag') and ts <= ?
order by ts desc limit 20"""


class RecentChange(Finding):
    service: str
    kind: str
    change: str
    minutes_before: float
    same_service: bool


@analyzer(timeout_s=15, category="deploy")
def recent_change(alert: Alert, telemetry: Telemetry) -> RecentChange | None:
    """The change closest before the alert, scored higher on the alerting service itself."""
    moment = alert.starts_at
    rows = telemetry.sql(CHANGES_SQL, [moment.replace(tzinfo=None)])
    if not rows:
        return None
    service = alert.service

    def score(row: tuple[datetime, str, str, str]) -> float:
        minutes = max(0.0, (moment - utc(row[0])).total_seconds() / 60)
        proximity = 1.0 / (1.0 + minutes / 15)
        return proximity * (1.0 if row[2] == service else 0.3)

    best = max(rows.rows, key=score)
    ts, kind, changed, summary = best
    minutes = (moment - utc(ts)).total_seconds() / 60
    same = changed == service
    return RecentChange(
        title=f"{kind.capitalize()} on {changed} {minutes:.0f} min before the alert",
        summary=f"{quoted(summary)} at {ts:%H:%M} UTC, {minutes:.0f} minutes before {alert.name}"
                f"{'' if same else f' (on {changed}, not on the alerting service)'}.",
        severity=Severity.WARNING if same else Severity.INFO,
        confidence=round(min(0.8, score(best)), 3), category=CATEGORY[kind],
        entities=[Entity.service(changed)], evidence=[rows.evidence()], onset=utc(ts),
        service=changed, kind=kind, change=summary, minutes_before=round(minutes, 1),
        same_service=same,
    )


