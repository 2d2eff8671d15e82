"""Routes: which route of the edge got the extra demand, and which service it ran out of.

The edge's access log (`requests`: ts, service, route, account_id; docs/telemetry.md) counts
every request by route, unsampled. A surge or an abuse campaign arrives on a route; the
services behind the route all see more work, and the ones the route reaches through them see
it too. The cause is the service whose own capacity ran out: its own time per request (its
server span minus the calls it made) grew, where the services it calls were waiting on it or
kept pace. Of several that ran out about as badly, the one nearest the edge is named, and of
those the one the route calls first, since the others only see what it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

from casebook.analyzers.periods import naive, onset_of
from casebook.analyzers.shapes import find_shift
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
from casebook.sdk.models import utc

ROUTE_RATES_SQL = """
select service, route, time_bucket(interval '1 minute', ts) as minute, count(*) as value
from requests where route is not null group by all order by service, route, minute"""
# Every span of the traces the route's requests started at the edge (sampled traces): the
# edge's span is named after the route, as OpenTelemetry names HTTP server spans
# ("GET /orders"), or carries it as `http.route`.
ROUTE_SPANS_SQL = """
with roots as (
    select distinct trace_id from spans
    where service = ? and (name = ? or attributes['http.route'] = ?)
)
select trace_id, span_id, parent_span_id, service, start_ts, duration_ms
from spans where trace_id in (select trace_id from roots)"""
# Clients of the route after the onset that sent nothing before it, with their requests.
NEW_CLIENTS_SQL = """
with seen as (select distinct account_id from requests where ts < ? and account_id is not null)
select r.account_id, count(*) as requests
from requests r left join seen s using (account_id)
where r.service = ? and r.route = ? and r.ts >= ? and r.account_id is not null
  and s.account_id is null
group by all order by requests desc"""

SURGE_RATIO = 1.5
MIN_SAMPLES = 3  # entry spans of a service on each side of the onset
RAN_OUT = 2.0  # own time per request this many times its usual: the service ran out
# Own time measured on both sides of the onset and grown less than this everywhere the route
# reaches: every service kept pace, so the extra demand is not why anything failed (a daily
# swing or a client's retries, not a shortage).
KEPT_PACE = 1.5
NEAR_WORST = 1.5  # ran out within this factor of the worst counts as "as badly"
LATE_ONSET = timedelta(minutes=5)  # a route surge after the alert did not cause it
MAX_ACCOUNTS = 1000


class RouteSurge(Finding):
    edge: str
    route: str
    service: str
    baseline_per_min: float
    level_per_min: float
    ratio: float
    own_time_ratio: float
    reached: list[str]
    new_clients: int
    new_client_share: float
    new_accounts: list[str] = []
    ran_out: bool = True  # False: the traces show every service the route reaches kept pace


@dataclass
class _Entry:
    """A service's share of a trace: its entry span, and how long it worked itself."""

    service: str
    start: datetime
    own_ms: float
    depth: int
    order: float  # ms after the route's root started (which callee the edge calls first)


@dataclass
class _Load:
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    depth: int = 99
    order: float = float("inf")

    def ratio(self) -> float | None:
        if len(self.before) < MIN_SAMPLES or len(self.after) < MIN_SAMPLES:
            return None
        return median(self.after) / max(median(self.before), 1.0)


@analyzer(timeout_s=30, category="capacity",
          reads=["requests.route", "requests.account_id", "spans.parent_span_id",
                 "spans.duration_ms", "spans.start_ts", "attributes:http.route"])
def route_surge(alert: Alert, telemetry: Telemetry) -> RouteSurge | None:
    """A route of the edge took on much more traffic before the alert; names the service
    behind it whose own capacity ran out."""
    if not telemetry.has_table("requests") or \
            "route" not in telemetry.shared("select * from requests limit 0").columns:
        return None
    surge = _surging_route(alert, telemetry)
    if surge is None:
        return None
    edge, route, shift, rates = surge
    onset = naive(shift.onset)
    loads = _own_time(telemetry, edge, route, onset)
    service, own_ratio, how = _ran_out(edge, loads)
    kept_pace = _kept_pace(service, loads)
    if kept_pace:
        how += (f"; its own time per request stayed at {own_ratio:.1f}x the usual, and no "
                "service the route reaches ran out")
    clients = telemetry.sql(NEW_CLIENTS_SQL, [onset, edge, route, onset])
    new_requests = sum(r[1] for r in clients.rows)
    minutes_after = max((naive(telemetry.window.end) - onset).total_seconds() / 60, 1.0)
    share = new_requests / (shift.level * minutes_after) if shift.level else 0.0
    reached = sorted(loads, key=lambda s: (loads[s].depth, loads[s].order))
    evidence = rates.evidence(limit=10, note=f"requests per minute on {route} at {edge}")
    evidence.series = {f"{route} requests per minute": [(t, float(v)) for t, v in rates.rows]}
    shown = [[s, loads[s].depth, _median(loads[s].before), _median(loads[s].after)]
             for s in reached]
    found = [evidence, QueryResult("", [], ["service", "hops from the edge", "own ms before",
                                            "own ms after"], shown)
             .evidence(note=f"own time per request of the services {route} reaches")]
    added = shift.level - shift.baseline
    outcome = "nothing behind it ran out" if kept_pace else f"{service} ran out of capacity"
    return RouteSurge(
        title=f"{route} traffic up {shift.ratio:.1f}x; {outcome}",
        summary=f"{route} at {edge} went from {shift.baseline:.0f} to {shift.level:.0f} "
                f"requests per minute at {shift.onset:%H:%M} UTC (+{added:.0f}/min); {how}.",
        severity=Severity.INFO if kept_pace else
        Severity.CRITICAL if shift.ratio >= 2 else Severity.WARNING,
        confidence=0.3 if kept_pace else 0.8 if own_ratio >= RAN_OUT else 0.6,
        category="capacity", entities=[Entity.service(service)], evidence=found,
        onset=utc(shift.onset),
        # A service out of capacity is slow and times out: its callers' errors, timeouts and
        # retries, and the CPU it and the services behind it burn on the extra work. A surge
        # that every service kept pace with explains no failure.
        explains=[] if kept_pace else [
            "traffic_surge", "compute_saturation", "cpu_contention", "retry_storm",
            "error_log_spike", "error_origin", "code_path_change", "latency_origin",
            "failure_origin"],
        mitigations=[Mitigation(action=f"Scale out {service} or rate-limit {route}",
                                detail="the extra load arrives on one route", risk="low")],
        edge=edge, route=route, service=service, baseline_per_min=round(shift.baseline, 2),
        level_per_min=round(shift.level, 2), ratio=round(shift.ratio, 3),
        own_time_ratio=round(own_ratio, 2), reached=reached, new_clients=len(clients.rows),
        new_client_share=round(min(share, 1.0), 4),
        new_accounts=sorted(str(r[0]) for r in clients.rows[:MAX_ACCOUNTS]),
        ran_out=not kept_pace,
    )


def _surging_route(alert: Alert, telemetry: Telemetry):
    """The (edge, route) whose request rate rose most before the alert, with its shift."""
    def by_route(handle: Telemetry) -> dict[tuple[str, str], list[tuple[datetime, int]]]:
        series: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
        for service, route, minute, value in handle.sql(ROUTE_RATES_SQL).rows:
            series.setdefault((service, route), []).append((minute, value))
        return series

    window = by_route(telemetry)
    try:
        history = by_route(telemetry.baseline())
    except Exception:  # a handle that cannot open the period before: the window is all there is
        history = {}
    latest = naive(onset_of(alert)) + LATE_ONSET
    best = None
    for key, rows in window.items():
        now = QueryResult("", [], ["minute", "value"], rows[:-1])  # the last minute is partial
        before = QueryResult("", [], ["minute", "value"], history.get(key, []))
        shift = find_shift(now, before, up=True, min_ratio=SURGE_RATIO)
        if shift is None or naive(shift.onset) > latest or shift.onset == rows[0][0]:
            continue  # none, after the alert, or already there when the window opens (a
            # level the period before did not have is not an onset seen in the window)
        added = shift.level - shift.baseline
        if best is None or added > best[0]:
            best = (added, key, shift, now)
    if best is None:
        return None
    _, (edge, route), shift, now = best
    return edge, route, shift, now


def _own_time(telemetry: Telemetry, edge: str, route: str,
              onset: datetime) -> dict[str, _Load]:
    """Per service the route reaches: own time of its entry spans before and after the onset."""
    rows = telemetry.sql(ROUTE_SPANS_SQL, [edge, route, route]).rows
    spans = {(r[0], r[1]): r for r in rows}
    children: dict[tuple[str, str | None], list[tuple]] = {}
    for r in rows:
        children.setdefault((r[0], r[2]), []).append(r)
    loads: dict[str, _Load] = {}
    for entry in _entries(rows, spans, children):
        load = loads.setdefault(entry.service, _Load())
        (load.after if entry.start >= onset else load.before).append(entry.own_ms)
        load.depth = min(load.depth, entry.depth)
        load.order = min(load.order, entry.order)
    return loads


def _entries(rows: list[tuple], spans: dict, children: dict) -> list[_Entry]:
    """Spans where a trace enters a service (no parent, or a parent of another service)."""
    found = []
    for trace, span_id, parent_id, service, start, duration in rows:
        parent = spans.get((trace, parent_id))
        if parent is not None and parent[3] == service:
            continue
        depth, root, cursor = 0, (trace, span_id, parent_id, service, start, duration), parent
        while cursor is not None:
            if cursor[3] != root[3]:
                depth += 1
            root = cursor
            cursor = spans.get((trace, cursor[2]))
        waited = _covered(start, duration, children.get((trace, span_id), []))
        order = (start - root[4]).total_seconds() * 1000
        found.append(_Entry(service, start, max(duration - waited, 0.0), depth, order))
    return found


def _covered(start: datetime, duration: float, calls: list[tuple]) -> float:
    """Milliseconds of the span during which at least one of its calls was running."""
    end = start + timedelta(milliseconds=duration)
    spans = sorted((max(c[4], start), min(c[4] + timedelta(milliseconds=c[5]), end))
                   for c in calls)
    total, current = 0.0, None
    for a, b in spans:
        if b <= a:
            continue
        if current is None or a > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds() * 1000
            current = [a, b]
        else:
            current[1] = max(current[1], b)
    if current is not None:
        total += (current[1] - current[0]).total_seconds() * 1000
    return total


def _ran_out(edge: str, loads: dict[str, _Load]) -> tuple[str, float, str]:
    """The service whose own capacity ran out: the worst rise of own time per request; of
    those about as bad, the nearest the edge, then the first the route calls."""
    ratios = {s: r for s, load in loads.items() if (r := load.ratio()) is not None}
    worst = max(ratios.values(), default=0.0)
    if worst >= RAN_OUT:
        near = [s for s, r in ratios.items() if r * NEAR_WORST >= worst]
        service = min(near, key=lambda s: (loads[s].depth, loads[s].order, s))
        load = loads[service]
        return service, ratios[service], (
            f"{service}'s own time per request went from {median(load.before):.0f} to "
            f"{median(load.after):.0f} ms ({ratios[service]:.0f}x) while it served the route")
    first = [s for s in loads if s != edge and loads[s].depth == 1]
    if first:  # nothing ran out (yet): the service the route calls first takes the load
        service = min(first, key=lambda s: (loads[s].order, s))
        return service, ratios.get(service, 1.0), f"{edge} sends the route to {service} first"
    return edge, ratios.get(edge, 1.0), f"{edge} serves the route itself"


def _kept_pace(service: str, loads: dict[str, _Load]) -> bool:
    """Whether the traces show every service the route reaches keeping pace: the named one
    measured on both sides of the onset, and no measured own time grown KEPT_PACE or more."""
    ratios = [r for load in loads.values() if (r := load.ratio()) is not None]
    return service in loads and loads[service].ratio() is not None and \
        max(ratios) < KEPT_PACE


def _median(values: list[float]) -> float | None:
    return round(median(values), 1) if values else None
