"""Capacity: more work arrived (traffic surge) or the service ran out of compute (saturation)."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from casebook.analyzers.clients import requests_cte
from casebook.analyzers.periods import MAX_ALERT_DELAY, naive, onset_of
from casebook.analyzers.routes import RouteSurge
from casebook.analyzers.shapes import counter_rates, find_shift, metric_series, rate_series
from casebook.sdk import (
    Alert,
    Entity,
    Finding,
    Mitigation,
    QueryResult,
    Severity,
    Telemetry,
    analyzer,
)

SATURATION_METRICS = ("gpu_utilization_ratio", "cpu_usage_ratio")
SURGE_RATIO = 1.5
MAX_SURGING = 5
CARRIED_SHARE = 0.7  # a caller whose traffic grew this share as much carried the surge
EDGES_SQL = """
select distinct p.service as caller, c.service as callee
from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where c.service <> p.service"""


class ComputeSaturation(Finding):
    service: str
    metric: str
    baseline: float
    level: float


@analyzer(timeout_s=20, category="resource",
          reads=["metrics:gpu_utilization_ratio", "metrics:cpu_usage_ratio"])
def compute_saturation(telemetry: Telemetry, service: str) -> ComputeSaturation | None:
    """The service's GPUs or CPUs went from comfortable to nearly full and stayed there."""
    for metric in SATURATION_METRICS:
        window, baseline = metric_series(telemetry, metric, service)
        shift = find_shift(window, baseline, up=True, min_ratio=1.2)
        if shift is None or shift.level < 0.85:
            continue
        evidence = window.evidence(limit=5, note=f"{metric} per minute")
        evidence.series = {metric: [(t, float(v)) for t, v in window.rows]}
        return ComputeSaturation(
            title=f"{service} {metric.split('_')[0].upper()} saturated",
            summary=f"{metric} on {service} rose from {shift.baseline:.2f} to {shift.level:.2f} "
                    f"from {shift.onset:%H:%M} UTC.",
            severity=Severity.WARNING, confidence=0.6, category="resource",
            entities=[Entity.service(service)], evidence=[evidence], onset=shift.onset,
            service=service, metric=metric, baseline=round(shift.baseline, 4),
            level=round(shift.level, 4),
        )
    return None


class TrafficSurge(Finding):
    service: str
    baseline_per_min: float
    level_per_min: float
    ratio: float
    new_client_share: float
    new_clients: int
    new_accounts: list[str] = []


NEW_CLIENTS_SQL = """
, seen_before as (
    select distinct account_id from client_requests
    where (service = ? or ?) and ts < ? - interval '15 minutes'
)
select count(distinct r.account_id) filter (where b.account_id is null) as new_clients,
       count(*) filter (where b.account_id is null) as new_requests,
       count(*) as requests,
       list(distinct r.account_id) filter (where b.account_id is null) as new_accounts
from client_requests r left join seen_before b using (account_id)
where (r.service = ? or ?) and r.ts >= ?"""
MAX_NEW_ACCOUNTS = 1000
METRIC_STEP = timedelta(minutes=2)  # onsets of per-minute series this close are simultaneous
# An edge's access log names the edge, not the services behind it: then every request counts.
SERVES_SQL = "select count(*) > 0 from client_requests where service = ?"
# Clients first seen shortly before the detected onset still count as new: ramps start small.


def surging_services(alert: Alert, telemetry: Telemetry) -> list[str]:
    """The alerting service and the services whose request rate of the last quarter hour is
    well above the rest of the window (one query over every service)."""
    named = [alert.service] if alert.service else []
    services = telemetry.metric_services().get("http_requests_total", [])
    ratios = recent_ratios(alert, telemetry, services)
    rising = sorted(((r, s) for s, r in ratios.items() if r >= SURGE_RATIO), reverse=True)
    return list(dict.fromkeys(named + [s for _, s in rising[:MAX_SURGING]]))


def recent_ratios(alert: Alert, telemetry: Telemetry, services: list[str]) -> dict[str, float]:
    """Request rate of the last quarter hour over the rest of the window, per service."""
    if not services:
        return {}
    recent = naive(onset_of(alert)) - MAX_ALERT_DELAY
    rates: dict[str, tuple[list[float], list[float]]] = {}
    for service, minute, value in counter_rates(telemetry, "http_requests_total", services):
        before, after = rates.setdefault(service, ([], []))
        (after if minute >= recent else before).append(float(value))
    return {s: median(a) / max(median(b), 1e-9) for s, (b, a) in rates.items()
            if len(b) >= 5 and a}


def _carried_from(alert: Alert, telemetry: Telemetry, service: str, ratio: float) -> str | None:
    """A caller whose traffic grew about as much: the surge came through it."""
    if not telemetry.has_table("spans"):
        return None
    callers = sorted({r[0] for r in telemetry.shared(EDGES_SQL) if r[1] == service})
    grown = recent_ratios(alert, telemetry, callers)
    carriers = [c for c, r in grown.items() if r >= max(SURGE_RATIO, CARRIED_SHARE * ratio)]
    return carriers[0] if carriers else None


@analyzer(fan_out={"service": surging_services}, timeout_s=20, category="capacity",
          reads=["metrics:http_requests_total", "requests.account_id", "attributes:account"])
def traffic_surge(alert: Alert, telemetry: Telemetry, service: str,
                  compute_saturation: ComputeSaturation | None,
                  route_surge: RouteSurge | None) -> TrafficSurge | None:
    """Request volume of the service rose well above its baseline; says who sent the extra.

    When the edge's access log shows the extra arriving on one route, a service that route
    reaches, other than the one whose capacity ran out, only carried it.
    """
    window, baseline = rate_series(telemetry, "http_requests_total", service)
    shift = find_shift(window, baseline, up=True, min_ratio=1.5)
    if shift is None:
        return None
    evidence = window.evidence(limit=5, note="requests per minute")
    evidence.series = {"requests per minute": [(t, float(v)) for t, v in window.rows]}
    share, newcomers, found, new_accounts = 0.0, 0, [evidence], []
    source = requests_cte(telemetry)
    if source is not None:
        onset = shift.onset.replace(tzinfo=None) if isinstance(shift.onset, datetime) else shift.onset
        anyone = not telemetry.sql(f"{source} {SERVES_SQL}", [service]).scalar()
        clients = telemetry.sql(source + NEW_CLIENTS_SQL,
                                [service, anyone, onset, service, anyone, onset])
        newcomers, new_requests, total, accounts = clients.rows[0]
        new_accounts = sorted(accounts or [])[:MAX_NEW_ACCOUNTS]
        share = new_requests / total if total else 0.0
        shown = QueryResult(clients.query, clients.params, clients.columns[:3],
                            [clients.rows[0][:3]])
        found.append(shown.evidence(note="requests after the onset from clients never seen "
                                           "before it"))
    carrier = _carried_from(alert, telemetry, service, shift.ratio)
    came = f"; it came through {carrier}, whose traffic grew as much" if carrier else ""
    if route_surge is not None and service != route_surge.service and (
            service in route_surge.reached or service == route_surge.edge):
        carrier = route_surge.route
        outcome = f"which ran {route_surge.service} out of capacity" if route_surge.ran_out \
            else "which every service it reaches kept pace with"
        came = f"; it came with {route_surge.route} at {route_surge.edge}, {outcome}"
    added = shift.level - shift.baseline
    from_new = f"; {share:.0%} of requests since come from {newcomers} new clients" \
        if newcomers else ""
    return TrafficSurge(
        title=f"Traffic to {service} up {shift.ratio:.1f}x",
        summary=f"{service} went from {shift.baseline:.0f} to {shift.level:.0f} requests per "
                f"minute at {shift.onset:%H:%M} UTC (+{added:.0f}/min){from_new}"
                + came + ".",
        severity=Severity.INFO if carrier else Severity.CRITICAL if shift.ratio >= 2 else Severity.WARNING,
        confidence=0.2 if carrier else 0.75 if share >= 0.3 else 0.55, category="capacity",
        entities=[Entity.service(service)], evidence=found, onset=shift.onset,
        explains=[] if carrier else ["compute_saturation", "cpu_contention"]
        if _not_before(compute_saturation, shift.onset - METRIC_STEP) else ["cpu_contention"],
        mitigations=[Mitigation(action=f"Scale out {service} or shed low-priority traffic",
                                detail="the extra load is real demand", risk="low")],
        service=service, baseline_per_min=round(shift.baseline, 2),
        level_per_min=round(shift.level, 2), ratio=round(shift.ratio, 3),
        new_client_share=round(share, 4), new_clients=int(newcomers),
        new_accounts=new_accounts,
    )


def _not_before(finding: Finding | None, onset: datetime) -> bool:
    """Whether the finding exists and began at or after `onset` (so it may be its effect)."""
    return finding is not None and finding.onset is not None and finding.onset >= _aware(onset)


def _aware(moment: datetime) -> datetime:
    from casebook.sdk.models import utc

    return utc(moment)
