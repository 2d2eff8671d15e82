"""Disks: a service's volume filled up, so its writes fail ("no space left on device").

Read from any `*disk_usage_ratio` metric (used over capacity, 0 to 1) and from log lines that
say the device is full. The onset is when the disk became full, or the first such line.
"""

from __future__ import annotations

from datetime import datetime

from casebook.sdk import Alert, Entity, Finding, Mitigation, Severity, Telemetry, analyzer
from casebook.sdk.models import utc
from casebook.sdk.telemetry import service_order

DISK_METRIC = r"disk_usage_ratio$"
NO_SPACE = r"no space left on device|disk full|enospc|disk quota exceeded"
FULL = 0.95

LOGGED_SQL = "select distinct service from logs where regexp_matches(message, ?, 'i')"
USAGE_SQL = """
select name, coalesce(labels['mountpoint'], labels['device'], labels['pod'], labels['instance'],
                service) as volume,
       min(value) as lowest, max(value) as highest,
       min(ts) filter (where value >= ?) as full_at
from metrics where service = ? and regexp_matches(name, ?)
group by all order by highest desc"""
LINES_SQL = """
select min(ts) as first, count(*) as lines, any_value(message) as example
from logs where service = ? and regexp_matches(message, ?, 'i')"""


def disk_services(telemetry: Telemetry) -> list[str]:
    """Services that report disk usage or log that a device is full."""
    services = set(telemetry.services_reporting(DISK_METRIC))
    if telemetry.has_table("logs"):
        services.update(r[0] for r in telemetry.shared(LOGGED_SQL, [NO_SPACE]))
    return sorted(services, key=service_order)


class DiskFull(Finding):
    service: str
    volume: str | None
    highest_ratio: float | None
    full_at: datetime | None
    error_lines: int


@analyzer(fan_out={"service": disk_services}, timeout_s=20, category="resource",
          reads=["metrics:*disk_usage_ratio", "labels:mountpoint", "labels:device", "labels:pod",
                 "logs.message"])
def disk_full(alert: Alert, telemetry: Telemetry, service: str) -> DiskFull | None:
    """A volume of the service reached its capacity, or the service logged that it had."""
    usage = telemetry.sql(USAGE_SQL, [FULL, service, DISK_METRIC])
    lines = telemetry.sql(LINES_SQL, [service, NO_SPACE])
    first_line, count, example = lines.rows[0]
    full = next((r for r in usage.rows if r[4] is not None and r[2] < FULL), None)
    if full is None and not count:
        return None
    moments = [m for m in (full[4] if full else None, first_line) if m is not None]
    onset = min(moments)
    found = [usage.evidence(note=f"disk usage of {service}")] if full else []
    if count:
        found.append(lines.evidence(note=f"{service}'s log lines saying the disk is full"))
    said = f"; {count} log line(s) like \"{example[:80]}\"" if count else ""
    level = (f"{full[0]} of {full[1]} rose from {full[2]:.0%} to {full[3]:.0%}" if full
             else f"{service} logged that its disk is full")
    return DiskFull(
        title=f"Disk full on {service}" + (f" ({full[1]})" if full else ""),
        summary=f"{level} at {onset:%H:%M} UTC{said}.",
        severity=Severity.CRITICAL, confidence=0.9 if full and count else 0.8,
        category="resource", entities=[Entity.service(service)], evidence=found,
        onset=utc(onset), explains=["error_log_spike", "error_origin", "code_path_change"],
        mitigations=[Mitigation(action=f"Free space on {service}'s volume (rotate logs, "
                                       "drop old data) or grow it",
                                detail="writes fail until there is room", risk="low")],
        service=service, volume=full[1] if full else None,
        highest_ratio=round(full[3], 4) if full else None,
        full_at=utc(full[4]) if full else None, error_lines=int(count),
    )
