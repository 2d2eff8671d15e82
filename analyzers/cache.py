"""Cache loss: a cache's hit ratio collapsed, so the work it absorbed landed on the backends."""

from __future__ import annotations

from datetime import datetime, timedelta

from casebook.analyzers.capacity import ComputeSaturation, TrafficSurge
from casebook.analyzers.periods import naive
from casebook.analyzers.shapes import counter_rates, find_shift, metric_series
from casebook.sdk import (
    Alert,
    Entity,
    Finding,
    Mitigation,
    Severity,
    Telemetry,
    analyzer,
)
from casebook.sdk.models import utc

DOWNSTREAM = ["code_path_change", "latency_origin", "failure_origin", "error_log_spike",
              "error_origin", "cpu_contention", "memory_pressure"]
# The raw samples around the per-minute onset: a hit ratio is over the sample interval, so the
# loss began after the sample before the first low one; a restart of the cache pins it.
SAMPLES_SQL = """
select ts, name, value from metrics
where service = ? and name in ('cache_hit_ratio', 'cache_keys') and ts >= ? and ts <= ?
order by ts"""
DILUTION_SLACK = 0.75
RESTART_SQL = """
select min(ts) from events
where service = ? and lower(kind) = 'restart' and ts >= ? and ts <= ?"""


def caches(telemetry: Telemetry) -> list[str]:
    """Every service that reports a cache hit ratio in the window."""
    return list(telemetry.metric_services().get("cache_hit_ratio", []))


class CacheCollapse(Finding):
    cache: str
    baseline_hit_ratio: float
    hit_ratio: float
    explained: list[str]


@analyzer(fan_out={"cache": caches}, timeout_s=20, category="cache",
          reads=["metrics:cache_hit_ratio", "metrics:cache_keys", "metrics:http_requests_total",
                 "events.kind"])
def cache_collapse(alert: Alert, telemetry: Telemetry, cache: str,
                   traffic_surge: TrafficSurge | None,
                   compute_saturation: ComputeSaturation | None) -> CacheCollapse | None:
    """A cache's hit ratio fell by half or more, before any surge it would explain.

    A cache that dips after traffic has already grown (new keys not cached yet) is an effect,
    not a cause, and is not reported.
    """
    window, baseline = metric_series(telemetry, "cache_hit_ratio", cache)
    shift = find_shift(window, baseline, up=False, min_ratio=0.5)
    if shift is None:
        return None
    began, restarted = _began(telemetry, cache, shift.onset, (shift.baseline + shift.level) / 2)
    onset = utc(began)
    if traffic_surge is not None and traffic_surge.onset and traffic_surge.onset < onset and \
            not restarted and _diluted(shift.baseline, shift.level, traffic_surge.ratio):
        return None  # the traffic grew first: the cache dip follows it
    explained = [name for name, finding in (("traffic_surge", traffic_surge),
                                            ("compute_saturation", compute_saturation))
                 if finding is not None and finding.onset is not None and finding.onset >= onset]
    # What an empty cache sends downstream: callers that start querying the database (a new
    # code path) and a database that slows down or fails under the load.
    consequences = [*explained, *DOWNSTREAM]
    evidence = window.evidence(limit=5, note="cache hit ratio per minute")
    evidence.series = {f"{cache} hit ratio": [(t, float(v)) for t, v in window.rows]}
    service = alert.service
    if service:
        requests = counter_rates(telemetry, "http_requests_total", [service])
        evidence.series[f"{service} requests per minute"] = [(t, float(v))
                                                             for _, t, v in requests]
    after = ", which preceded " + " and ".join(e.replace("_", " ") for e in explained) \
        if explained else ""
    return CacheCollapse(
        title=f"{cache} hit ratio collapsed",
        summary=f"{cache} hit ratio fell from {shift.baseline:.2f} to {shift.level:.2f} at "
                f"{onset:%H:%M} UTC{after}.",
        severity=Severity.CRITICAL, confidence=0.9 if explained else 0.7, category="cache",
        entities=[Entity.service(cache)], evidence=[evidence], onset=onset,
        explains=consequences,
        mitigations=[Mitigation(action=f"Restore {cache} (warm it, roll back what emptied it) "
                                       "before adding capacity",
                                detail="added capacity would only absorb recomputation",
                                risk="low")],
        cache=cache, baseline_hit_ratio=round(shift.baseline, 4),
        hit_ratio=round(shift.level, 4), explained=explained,
    )


def _diluted(baseline: float, level: float, surge_ratio: float) -> bool:
    """Whether new traffic alone can explain the dip: a surge that multiplies the requests by r,
    all of them misses, brings the hit ratio down to baseline / r at most. A deeper fall means
    the cache lost what it held (a quarter of slack for noisy samples)."""
    return level >= DILUTION_SLACK * baseline / max(surge_ratio, 1.0)


def _began(telemetry: Telemetry, cache: str, minute: datetime,
           low: float) -> tuple[datetime, bool]:
    """When the cache lost its contents, as exactly as the samples and events tell: a restart
    of the cache around the drop, else the sample before the first low hit ratio (or the first
    key count under half the one before it), else the minute the per-minute series dropped.
    The flag says whether the cache restarted."""
    start, end = naive(minute) - timedelta(minutes=3), naive(minute) + timedelta(minutes=1)
    samples = telemetry.sql(SAMPLES_SQL, [cache, start, end]).rows
    previous: dict[str, tuple[datetime, float]] = {}
    began = None
    for ts, name, value in samples:
        before = previous.get(name)
        dropped = value < low if name == "cache_hit_ratio" else \
            before is not None and value < 0.5 * before[1]
        if dropped:
            began = before[0] if before is not None else ts
            break
        previous[name] = (ts, value)
    if telemetry.has_table("events"):
        restart = telemetry.sql(RESTART_SQL, [cache, (began or start) - timedelta(minutes=1),
                                              end]).scalar()
        if restart is not None:
            return restart, True
    return began or minute, False
