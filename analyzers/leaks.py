"""Leaks: a pod's memory climbed steadily to its limit and the pod was killed or restarted.

A leak is a shape, not a level: memory rises step after step for many minutes, reaches the
limit, and the kernel's OOM killer (or the runtime) ends the process, so memory falls back and
restart events or "out of memory" log lines follow. The onset is where the climb began, which
may be long before the alert: the slow build-up after a release is what attribution ties back
to the release.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from casebook.analyzers.resources import memory_services, resource_metrics
from casebook.sdk import Alert, Entity, Finding, Mitigation, Severity, Telemetry, analyzer
from casebook.sdk.models import utc

SERIES_SQL = """
select service, coalesce(labels['pod'], labels['instance'], service) as pod, name,
       list(ts order by ts) as times, list(value order by ts) as vals
from metrics where name in ({names}) group by all"""
KILLS_SQL = """
select 'event' as source, service, ts, summary as text from events
where kind in ('restart', 'oom', 'oom_kill', 'crash') and service = ?
union all
select 'log', service, ts, message from logs
where service = ? and regexp_matches(message, ?, 'i')
order by ts limit 20"""
OOM_TEXT = r"oomkill|out of memory|outofmemory|oom[- ]kill|memory limit|exit code 137"

MIN_CLIMB = timedelta(minutes=8)
# A process that runs out of memory or connections fails requests and times out its callers.
CONSEQUENCES = ["error_log_spike", "error_origin", "code_path_change"]
MIN_RISING_SHARE = 0.6  # of the steps of the climb that go up
NEAR_LIMIT = 0.85  # a share-of-limit metric this full counts as at the limit
MIN_RISE = 2.0  # without a limit: the peak this many times where the climb began
MIN_SHARE_RISE = 0.2  # with a limit: the climb covers at least this share of it


class MemoryLeak(Finding):
    service: str
    pod: str
    metric: str
    began: datetime
    start_level: float
    peak: float
    minutes_climbing: float
    killed: bool


@analyzer(fan_out={"service": memory_services}, timeout_s=20, category="resource",
          reads=["metrics:*memory*_ratio", "labels:pod", "events.kind", "logs.message"])
def memory_leak(alert: Alert, telemetry: Telemetry, service: str) -> MemoryLeak | None:
    """A pod's memory climbed steadily to its limit; restarts or OOM kills followed."""
    names = resource_metrics(telemetry, "memory")
    if not names:
        return None
    result = telemetry.shared(SERIES_SQL.format(names=", ".join("?" for _ in names)), names)
    climbs = [c for c in (_climb(r) for r in result.rows if r[0] == service) if c is not None]
    if not climbs:
        return None
    climb = min(climbs, key=lambda c: c["began"])
    kills = telemetry.sql(KILLS_SQL, [service, service, OOM_TEXT])
    after = [r for r in kills.rows if r[2] >= climb["began"]]
    killed = bool(after) or climb["dropped"]
    if not (killed or climb["full"]):
        return None
    minutes = (climb["peak_at"] - climb["began"]).total_seconds() / 60
    evidence = [result.evidence(limit=0, note=f"memory of {service}'s pods over the window")]
    evidence[0].series = {f"{climb['pod']} {climb['name']}": climb["points"]}
    if after:
        evidence.append(kills.evidence(note=f"restarts and out-of-memory lines of {service}"))
    ending = (f"; {len(after)} restart or out-of-memory record(s) followed" if after
              else "; memory then fell back, as when a process is killed" if climb["dropped"]
              else "")
    return MemoryLeak(
        title=f"Memory leak in {service} ({climb['pod']})",
        summary=f"{climb['name']} of {climb['pod']} climbed steadily from {climb['start']:.3g} "
                f"to {climb['peak']:.3g} over {minutes:.0f} min from {climb['began']:%H:%M} UTC"
                f"{ending}.",
        severity=Severity.CRITICAL, confidence=0.9 if killed and climb["full"] else 0.75,
        category="resource", onset=utc(climb["began"]), explains=CONSEQUENCES,
        entities=[Entity.service(service), Entity(kind="pod", name=climb["pod"])],
        evidence=evidence,
        mitigations=[Mitigation(action=f"Restart {service}'s pods on a schedule or roll back "
                                       "the release that began the climb; find what holds "
                                       "the memory (heap profile)",
                                detail="more memory only delays the next kill", risk="low")],
        service=service, pod=climb["pod"], metric=climb["name"], began=utc(climb["began"]),
        start_level=round(climb["start"], 6), peak=round(climb["peak"], 6),
        minutes_climbing=round(minutes, 1), killed=killed,
    )


def _climb(row: tuple[Any, ...]) -> dict[str, Any] | None:
    """The first steady climb of one pod's series to (near) its top, if there is one."""
    _, pod, name, times, values = row
    if len(values) < 6:
        return None
    share = re.search(r"percent|ratio|utili[sz]ation", name, re.IGNORECASE) is not None
    scale = 100.0 if "percent" in name.lower() else 1.0
    top = max(values)
    peak_index = next(i for i, v in enumerate(values) if v >= top - 0.1 * (top - min(values)))
    start_index = min(range(peak_index + 1), key=lambda i: (values[i], -i))
    start, peak = values[start_index], values[peak_index]
    if peak_index - start_index < 4 or times[peak_index] - times[start_index] < MIN_CLIMB:
        return None
    steps = [b - a for a, b in zip(values[start_index:peak_index],
                                   values[start_index + 1:peak_index + 1], strict=True)]
    if sum(1 for s in steps if s > 0) < MIN_RISING_SHARE * len(steps):
        return None
    rise = peak - start
    full = share and peak / scale >= NEAR_LIMIT and rise / scale >= MIN_SHARE_RISE
    if not full and not (start > 0 and peak >= MIN_RISE * start):
        return None
    began_index = next(i for i in range(start_index, peak_index + 1)
                       if values[i] > start + 0.1 * rise)
    later = values[peak_index + 1:]
    dropped = bool(later) and min(later) <= start + 0.5 * rise
    return {"pod": pod, "name": name, "began": times[max(began_index - 1, start_index)],
            "start": start, "peak": top, "peak_at": times[peak_index], "full": full,
            "dropped": dropped, "points": [(t, float(v)) for t, v in zip(times, values,
                                                                         strict=True)]}


POOL_SQL = """
select service, coalesce(labels['pod'], service) || coalesce(' ' || labels['pool'], '') as pod,
       name, list(ts order by ts) as times, list(value order by ts) as vals
from metrics where regexp_matches(name, 'pool_usage_ratio$') group by all"""
POOL_METRIC = "pool_usage_ratio$"  # as POOL_SQL matches names
POOL_TEXT = r"waiting for a connection|pool exhausted|connection pool|too many connections"


def pooled_services(telemetry: Telemetry) -> list[str]:
    """Services that report how full their connection pools are."""
    return telemetry.services_reporting(POOL_METRIC)


class PoolExhaustion(Finding):
    service: str
    pool: str
    began: datetime
    minutes_climbing: float
    timeouts: int


@analyzer(fan_out={"service": pooled_services}, timeout_s=20, category="resource",
          reads=["metrics:*pool_usage_ratio", "labels:pool", "logs.message"])
def pool_exhaustion(alert: Alert, telemetry: Telemetry, service: str) -> PoolExhaustion | None:
    """A connection pool filled up slowly (connections leaked) until callers waited for one."""
    result = telemetry.shared(POOL_SQL)
    climbs = [c for c in (_climb(r) for r in result.rows if r[0] == service)
              if c is not None and c["full"]]
    if not climbs:
        return None
    climb = min(climbs, key=lambda c: c["began"])
    lines = telemetry.sql("select count(*) from logs where service = ? and "
                          "regexp_matches(message, ?, 'i')", [service, POOL_TEXT]).scalar() or 0
    minutes = (climb["peak_at"] - climb["began"]).total_seconds() / 60
    evidence = result.evidence(limit=0, note=f"pool usage of {service}")
    evidence.series = {climb["pod"]: climb["points"]}
    return PoolExhaustion(
        title=f"Connection pool of {service} exhausted ({climb['pod']})",
        summary=f"{climb['name']} of {climb['pod']} climbed steadily from {climb['start']:.2g} "
                f"to {climb['peak']:.2g} over {minutes:.0f} min from {climb['began']:%H:%M} UTC"
                + (f"; {lines} log line(s) about waiting for a connection" if lines else "")
                + ".",
        severity=Severity.CRITICAL, confidence=0.85 if lines else 0.75, category="resource",
        entities=[Entity.service(service)], evidence=[evidence], onset=utc(climb["began"]),
        explains=CONSEQUENCES,
        mitigations=[Mitigation(action=f"Restart {service} to release the connections, then "
                                       "find what does not return them (often a new release)",
                                risk="low")],
        service=service, pool=climb["pod"], began=utc(climb["began"]),
        minutes_climbing=round(minutes, 1), timeouts=int(lines),
    )
