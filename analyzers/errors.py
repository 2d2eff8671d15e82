"""Errors in code: exceptions whose rate jumped, and the service whose spans raise them."""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer, quoted
from casebook.sdk.models import utc

# Errors that were already flowing this long before the alert fired are an older problem more
# often than its cause: they keep their finding but count for less.
STALE_BEFORE_ALERT = timedelta(minutes=15)

# An error's class: its exception attribute, else its message with numbers and ids masked.
ERROR_CLASSES_SQL = """
select service,
       coalesce(attributes['exception'],
                regexp_replace(regexp_replace(message, '[0-9a-f]{{8,}}', '<id>', 'g'),
                               '[0-9]+', '<n>', 'g')) as error,
       count(*) as n, min(ts) as first, any_value(message) as sample
from logs
where level in ('error', 'fatal'){since}
group by all"""


class ErrorLogSpike(Finding):
    service: str
    error: str
    count: int
    baseline_count: int
    sample: str


@analyzer(timeout_s=30, category="code",
          reads=["logs.level", "logs.message", "attributes:exception"])
def error_log_spike(alert: Alert, telemetry: Telemetry) -> ErrorLogSpike | None:
    """An error class (exception or message template) appeared or multiplied in the logs."""
    now = telemetry.sql(ERROR_CLASSES_SQL.format(since=""))
    before = {(r[0], r[1]): r[2] for r in
              telemetry.baseline().sql(ERROR_CLASSES_SQL.format(since=""))}
    scale = 1.0
    best = None
    for service, error, count, first, sample in now:
        previous = before.get((service, error), 0)
        growth = count / (scale * previous + 1)
        if count >= 20 and growth >= 5 and (best is None or count > best[2]):
            best = (service, error, count, first, sample, previous)
    if best is None:
        return None
    service, error, count, first, sample, previous = best
    new = "a new error" if previous == 0 else f"up from {previous}"
    # An exception name is a name; a message template is text anyone could have logged.
    label = error if error.isidentifier() else quoted(error)
    return ErrorLogSpike(
        title=f"{label} on {service}",
        summary=f"{service} logged {count} {label if label != error else repr(error)} errors "
                f"in the window ({new} in the hour "
                f"before), first at {first:%H:%M} UTC.",
        severity=Severity.WARNING, confidence=_confidence(alert, first), category="code",
        entities=[Entity.service(service)],
        evidence=[now.evidence(limit=10, note="error classes in the window")],
        onset=first, service=service, error=error, count=int(count),
        baseline_count=int(previous), sample=sample[:500],
    )


# Error spans none of whose children failed: where the error was raised, not passed along.
ORIGIN_SQL = """
with errors as (select * from spans where status = 'error')
select e.service, e.name, count(*) as n, min(e.start_ts) as first
from errors e
where not exists (select 1 from errors c
                  where c.trace_id = e.trace_id and c.parent_span_id = e.span_id)
group by all order by n desc limit 5"""


class ErrorOrigin(Finding):
    service: str
    operation: str
    count: int
    baseline_count: int


@analyzer(timeout_s=30, category="code", reads=["spans.status", "spans.parent_span_id"])
def error_origin(alert: Alert, telemetry: Telemetry) -> ErrorOrigin | None:
    """The service and operation where failing traces start failing (errors it raised itself)."""
    if not telemetry.has_table("spans"):
        return None
    now = telemetry.sql(ORIGIN_SQL)
    if not now:
        return None
    service, operation, count, first = now.rows[0]
    before = {(r[0], r[1]): r[2] for r in telemetry.baseline().sql(ORIGIN_SQL)}
    previous = before.get((service, operation), 0)
    if count < 20 or count < 5 * (previous + 1):
        return None
    return ErrorOrigin(
        title=f"Errors originate in {service} {operation}",
        summary=f"{count} failing spans were raised by {service} {operation} itself (children "
                f"ok), against {previous} in the hour before; first at {_hm(first)} UTC.",
        severity=Severity.WARNING, confidence=_confidence(alert, first), category="code",
        entities=[Entity.service(service)], evidence=[now.evidence()], onset=first,
        service=service, operation=operation, count=int(count), baseline_count=int(previous),
    )


def _confidence(alert: Alert, first: datetime) -> float:
    """0.6, or 0.35 when the errors began well before the alert fired."""
    return 0.35 if utc(first) < alert.starts_at - STALE_BEFORE_ALERT else 0.6


def _hm(moment: datetime) -> str:
    return f"{moment:%H:%M}"
