"""Changes: every deploy, config push, flag flip, scaling step or restart in the window.

One finding per change event, with what attribution needs to tie it to the anomalies other
analyzers find: when it happened, which services call the changed one (an error or latency
introduced in a service shows up in its callers), and whether the errors or the latency after
the change sit on the pods of the new version (a canary or a rolling release compared by its
`version` attribute). Whether a change explains an anomaly is decided once every finding is in
(executor/attribution.py); here a change is only described.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from casebook.analyzers.dependencies import CALL_EDGES_SQL
from casebook.analyzers.periods import naive
from casebook.sdk import Alert, Entity, Finding, Severity, Telemetry, analyzer, quoted
from casebook.sdk.models import utc

# The cause category a change of each kind stands for when it explains an anomaly.
CATEGORY = {
    "deploy": "deploy", "release": "deploy", "rollout": "deploy", "canary": "deploy",
    "rollback": "deploy", "config": "config", "flag": "flag", "feature_flag": "flag",
    "scale": "capacity", "restart": "deploy",
}
MAX_CHANGES = 40
MAX_HOPS = 5
VERSION_KEYS = ("version", "service.version")

CHANGES_SQL = f"""
select ts, kind, service, summary, attributes from events
where ts <= ? order by ts desc limit {MAX_CHANGES}"""
SPLIT_SPANS_SQL = """
select coalesce(attributes['version'], attributes['service.version']) as version,
       count(*) as requests, avg((status = 'error')::int) as error_ratio,
       quantile_cont(duration_ms, 0.95) as p95_ms
from spans where service = ? and start_ts >= ?
group by 1 having version is not null"""
SPLIT_LOGS_SQL = """
select coalesce(attributes['version'], attributes['service.version']) as version,
       count(*) as lines, avg((level in ('error', 'fatal'))::int) as error_ratio
from logs where service = ? and ts >= ?
group by 1 having version is not null"""
SPLIT_COUNTERS_SQL = """
with samples as (
    select name, labels['version'] as version, ts, value,
           lag(value) over (partition by name, labels order by ts) as prev
    from metrics
    where service = ? and name in ('http_requests_total', 'http_errors_total')
      and labels['version'] is not null
), styles as (
    select name, count(*) filter (where value > prev) >= 0.9 * count(*) filter (where value <> prev)
                 and count(*) filter (where value <> prev) >= 3 as cumulative
    from samples group by name
), counted as (
    select s.name, s.version, s.ts,
           case when not st.cumulative then s.value when s.prev is null then 0
                when s.value >= s.prev then s.value - s.prev else s.value end as served
    from samples s join styles st using (name)
)
select version, sum(served) filter (where name = 'http_requests_total') as requests,
       coalesce(sum(served) filter (where name = 'http_errors_total'), 0)
           / greatest(sum(served) filter (where name = 'http_requests_total'), 1) as error_ratio
from counted where ts >= ? group by version"""

MIN_SPLIT_REQUESTS = 10
SPLIT_RATIO = 3.0  # new version's error ratio (or p95) this many times the old one's


def change_keys(alert: Alert, telemetry: Telemetry) -> list[str]:
    """One key per change event up to the end of the window: `ts|kind|service`."""
    if not telemetry.has_table("events"):
        return []
    rows = telemetry.shared(CHANGES_SQL, [naive(telemetry.window.end)])
    return [f"{ts.isoformat()}|{kind}|{service}" for ts, kind, service, *_ in rows]


class ChangeEvent(Finding):
    service: str
    kind: str
    change: str
    at: datetime
    minutes_before_alert: float
    version: str | None = None
    callers: dict[str, int] = {}
    callees: dict[str, int] = {}
    version_split: str | None = None
    split_strength: float = 0.0
    attributable: bool = True


@analyzer(fan_out={"change": change_keys}, timeout_s=20, category="deploy",
          reads=["events", "events.attributes", "spans", "attributes:version",
                 "attributes:service.version", "logs", "labels:version",
                 "metrics:http_requests_total", "metrics:http_errors_total"])
def change_event(alert: Alert, telemetry: Telemetry, change: str) -> ChangeEvent | None:
    """A change in the window, its callers and how errors split by version after it."""
    stamp, kind, service = change.split("|", 2)
    at = datetime.fromisoformat(stamp)
    rows = [r for r in telemetry.shared(CHANGES_SQL, [naive(telemetry.window.end)])
            if r[0] == at and r[1] == kind and r[2] == service]
    if not rows:
        return None
    _, _, _, summary, attributes = rows[0]
    attributes = dict(attributes or {})
    version = next((attributes[k] for k in VERSION_KEYS if attributes.get(k)), None)
    callers = _callers(telemetry, service)
    callees = _callers(telemetry, service, down=True)
    split, strength, evidence = _version_split(telemetry, service, at, version)
    minutes = (alert.starts_at - utc(at)).total_seconds() / 60
    when = f"{abs(minutes):.0f} min {'before' if minutes >= 0 else 'after'} the alert"
    known = kind.lower() in CATEGORY
    return ChangeEvent(
        title=f"{kind.capitalize()} on {service} {when}",
        summary=f"{quoted(summary)} at {at:%H:%M} UTC, {when}"
                + (f"; {split}" if split else "") + ".",
        severity=Severity.INFO, confidence=0.2,
        category=CATEGORY.get(kind.lower(), "config"),
        entities=[Entity.service(service)], evidence=evidence, onset=utc(at),
        service=service, kind=kind, change=summary, at=utc(at),
        minutes_before_alert=round(minutes, 1), version=version, callers=callers,
        callees=callees,
        version_split=split, split_strength=strength,
        attributable=known and kind.lower() != "restart",
    )


def _callers(telemetry: Telemetry, service: str, down: bool = False) -> dict[str, int]:
    """Services that call `service` (or, `down`, that it calls) directly or through others,
    with the number of hops."""
    if not telemetry.has_table("spans"):
        return {}
    edges: dict[str, set[str]] = {}
    for caller, callee in telemetry.shared(CALL_EDGES_SQL):
        if down:
            edges.setdefault(caller, set()).add(callee)
        else:
            edges.setdefault(callee, set()).add(caller)
    hops = {service: 0}
    queue = deque([service])
    while queue:
        current = queue.popleft()
        if hops[current] >= MAX_HOPS:
            continue
        for caller in sorted(edges.get(current, ())):
            if caller not in hops:
                hops[caller] = hops[current] + 1
                queue.append(caller)
    hops.pop(service)
    return hops


def _version_split(telemetry: Telemetry, service: str, at: datetime,
                   version: str | None) -> tuple[str | None, float, list]:
    """Errors or latency concentrated on the new version after the change, when both run."""
    if not version:
        return None, 0.0, []
    found, evidence = [], []
    sources = ((SPLIT_SPANS_SQL, "requests", "spans"), (SPLIT_LOGS_SQL, "log lines", "logs"),
               (SPLIT_COUNTERS_SQL, "counted requests", "metrics"))
    for query, label, table in sources:
        if not telemetry.has_table(table):
            continue
        result = telemetry.sql(query, [service, naive(at)])
        rows = {r[0]: r for r in result.rows if r[1] >= MIN_SPLIT_REQUESTS}
        new = rows.pop(version, None)
        if new is None or not rows:
            continue
        old_errors = max(r[2] for r in rows.values())
        if new[2] >= 0.05 and new[2] >= SPLIT_RATIO * old_errors:
            found.append((min(1.0, new[2] / max(old_errors, 0.01) / 10),
                          f"{new[2]:.0%} of {label} on version {version} failed against "
                          f"{old_errors:.0%} on the others"))
        if label == "requests":
            old_p95 = max(r[3] or 0.0 for r in rows.values())
            if new[3] and old_p95 and new[3] >= SPLIT_RATIO * old_p95:
                found.append((min(1.0, new[3] / old_p95 / 10),
                              f"p95 latency of version {version} was {new[3]:.0f} ms against "
                              f"{old_p95:.0f} ms on the others"))
        evidence.append(result.evidence(note=f"{label} of {service} by version since the change"))
    if not found:
        return None, 0.0, evidence
    strength, text = max(found)
    return text, round(max(0.5, strength), 3), evidence
