"""Network: calls to or from a service spend longer on the wire than they used to.

A call between services shows in the traces as the caller's client span with the callee's
server span inside it. What the client waited for beyond the server's own time is the network
(and the proxies and queues on the way): the gap. Delay on one service's network (a slow link,
a saturated interface, injected latency) widens the gaps of most calls into and out of that
service, while each of its peers sees only the one edge to it widen. So the service where most
of its own edges slowed, by the most, is where the delay is.

Delay is often one-way: shaping only the packets a service sends from its listening port (its
replies) widens every call into it and none of the calls it makes; shaping its requests does
the reverse. So a service is also a suspect when most of its incoming edges, or most of its
outgoing ones, slowed. A peer that sees only that one edge slow among several of its own
pins the delay to this side of the link.
"""

from __future__ import annotations

from datetime import datetime
from statistics import median

from pydantic import BaseModel

from casebook.analyzers.periods import naive, onset_of, series_onset, with_history
from casebook.analyzers.resources import ResourceShortage
from casebook.sdk import (
    Alert,
    Entity,
    Evidence,
    Finding,
    Mitigation,
    Severity,
    Telemetry,
    analyzer,
    from_finding,
)
from casebook.sdk.models import utc

MIN_CALLS_BEFORE = 10  # calls on an edge before the onset to know its usual gap

GAPS_SQL = """
with children as (
    select trace_id, parent_span_id, service, start_ts, duration_ms,
           start_ts + to_microseconds((duration_ms * 1000)::bigint) as end_ts
    from spans where parent_span_id is not null
), placed as (
    select *,
           max(end_ts) over (partition by trace_id, parent_span_id order by start_ts
                             rows between unbounded preceding and 1 preceding) as prev_end,
           min(start_ts) over (partition by trace_id, parent_span_id order by start_ts
                               rows between 1 following and unbounded following) as next_start
    from children
), calls as (
    -- The wait around one call: from the end of the sibling called just before it (or the
    -- parent's start) to its start, and from its end to the next sibling's start (or the
    -- parent's end). Siblings called one after another are not part of it; siblings that
    -- overlap it (parallel calls) are ignored.
    select p.service as caller, c.service as callee,
           epoch_ms(c.start_ts - case when c.prev_end <= c.start_ts then c.prev_end
                                      else p.start_ts end)
           + epoch_ms(case when c.next_start >= c.end_ts then c.next_start
                           else p.start_ts + to_microseconds((p.duration_ms * 1000)::bigint)
                      end - c.end_ts) as gap_ms,
           c.start_ts >= ? as after,
           time_bucket(interval '1 minute', c.start_ts) as minute
    from placed c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    where c.service <> p.service and p.duration_ms >= c.duration_ms
), minutes as (
    select caller, callee, minute, median(gap_ms) as gap, count(*) as n
    from calls where not after group by all
), by_minute as (
    select caller, callee, median(gap) as usual_gap, mad(gap) as gap_spread,
           count(*) as minutes_before
    from minutes where n >= 3 group by all having count(*) >= 3
), by_call as (
    -- sampled traces: too few calls a minute for per-minute medians, so the calls themselves
    select caller, callee, median(gap_ms) as usual_gap, mad(gap_ms) as gap_spread,
           count(*) as calls_before
    from calls where not after group by all having count(*) >= {min_calls}
), usual as (
    select c.caller, c.callee, coalesce(m.usual_gap, c.usual_gap) as usual_gap,
           coalesce(m.gap_spread, c.gap_spread) as gap_spread,
           coalesce(m.minutes_before, 0) as minutes_before
    from by_call c left join by_minute m on c.caller = m.caller and c.callee = m.callee
), later as (
    select caller, callee, median(gap_ms) as gap_after, count(*) as calls_after
    from calls where after group by all
)
select u.caller, u.callee, u.usual_gap, u.gap_spread, u.minutes_before, l.gap_after,
       l.calls_after
from usual u join later l on u.caller = l.caller and u.callee = l.callee
where l.calls_after >= 1
order by u.caller, u.callee""".replace("{min_calls}", str(MIN_CALLS_BEFORE))

MIN_ADDED_MS = 10.0  # a gap must widen by at least this much...
MIN_Z = 4.0  # ...and by this many robust standard deviations of its per-minute median
# Calls after the onset for MIN_Z to suffice; fewer must stand out more (sampled traces of a
# small service hold a call or two a quarter hour).
FULL_CALLS_AFTER = 3
MIN_SLOWED_SHARE = 0.5  # of the service's own edges
MAX_SUSPECTS = 5
PEER_EDGES = 2  # other edges a peer needs before its own clean edges clear it


class EdgeGap(BaseModel):
    """One caller -> callee edge: the usual gap and the gap after the onset."""

    caller: str
    callee: str
    usual_ms: float
    after_ms: float
    z: float
    slowed: bool
    calls_after: int = FULL_CALLS_AFTER


class NetworkSuspect(BaseModel):
    service: str
    slowed: int
    edges: int
    added_ms: float  # median widening over its edges
    strength: float
    direction: str = "into or out of"  # which of its edges: all, calls into it, calls it makes
    gaps: list[EdgeGap]


class NetworkSurvey(Finding):
    suspects: list[str]
    placed: list[NetworkSuspect]


@analyzer(timeout_s=60, category="symptom", tags=("survey",),
          reads=["spans.start_ts", "spans.duration_ms", "spans.parent_span_id",
                 "metrics:latency_p95_ms"])
def network_survey(alert: Alert, telemetry: Telemetry) -> NetworkSurvey | None:
    """Services most of whose calls (in and out) spend much longer between client and server."""
    if not telemetry.has_table("spans"):
        return None
    history = with_history(telemetry, alert)
    onset = _symptom_onset(telemetry, alert)
    result = history.sql(GAPS_SQL, [onset])
    gaps = [_gap(*row) for row in result]
    by_service: dict[str, list[EdgeGap]] = {}
    for gap in gaps:
        by_service.setdefault(gap.caller, []).append(gap)
        by_service.setdefault(gap.callee, []).append(gap)
    found = {name: _suspect(name, edges, by_service) for name, edges in by_service.items()}
    suspects = {name: s for name, s in found.items() if s is not None}
    placed = [s for s in suspects.values() if not _shadow(s, suspects)]
    if not placed:
        return None
    placed.sort(key=lambda s: (-s.strength, s.service))
    placed = placed[:MAX_SUSPECTS]
    top = placed[0]
    return NetworkSurvey(
        title=f"Calls to and from {top.service} spend longer on the network",
        summary=f"{top.slowed} of {top.edges} service-to-service edges {top.direction} "
        f"{top.service} widened "
        f"by a median {top.added_ms:.0f} ms between client and server after "
        f"{onset:%H:%M} UTC.",
        severity=Severity.INFO,
        confidence=0.3,
        category="symptom",
        entities=[Entity.service(alert.service or top.service)],
        evidence=[
            result.evidence(
                limit=0,
                note="per edge: the usual client-server gap per "
                "minute before the onset and the gap after",
            )
        ],
        onset=utc(onset),
        suspects=[s.service for s in placed],
        placed=placed,
    )


class NetworkDelay(Finding):
    service: str
    slowed_edges: int
    edges: int
    added_ms: float


@analyzer(
    fan_out={"service": from_finding("network_survey", "suspects")},
    timeout_s=20,
    category="network",
)
def network_delay(
    service: str, network_survey: NetworkSurvey, cpu_contention: ResourceShortage | None
) -> NetworkDelay | None:
    """Most calls into and out of the service got slower on the wire: its network is delayed."""
    suspect = next((s for s in network_survey.placed if s.service == service), None)
    if suspect is None:
        return None
    rank = network_survey.suspects.index(service)
    weight = suspect.strength / (suspect.strength + 5)
    confidence = (0.5 + 0.45 * weight) * (1.0 if rank == 0 else 0.6)
    starved = cpu_contention is not None and cpu_contention.service == service
    if starved:
        # A process starved of CPU is slow to send and to read: the gaps are its CPU's doing.
        confidence *= 0.5
    survey_query = network_survey.evidence[0] if network_survey.evidence else Evidence()
    evidence = Evidence(
        query=survey_query.query,
        params=survey_query.params,
        columns=["caller", "callee", "usual gap ms", "gap after ms", "z", "slowed"],
        rows=[
            [
                g.caller,
                g.callee,
                round(g.usual_ms, 2),
                round(g.after_ms, 2),
                round(g.z, 2),
                g.slowed,
            ]
            for g in suspect.gaps
        ],
        note=f"client-server gaps of {service}'s edges, from the survey's query",
    )
    return NetworkDelay(
        title=f"Network delay at {service}",
        summary=f"{suspect.slowed} of {suspect.edges} edges {suspect.direction} {service} spend a "
        f"median {suspect.added_ms:.0f} ms more between client and server since the "
        f"onset, while the servers' own time did not grow by as much"
        + (
            f"; {service} is also short of CPU, which slows its network I/O too."
            if starved
            else "."
        ),
        severity=Severity.CRITICAL if rank == 0 and not starved else Severity.WARNING,
        confidence=round(confidence, 4),
        category="network",
        entities=[Entity.service(service)],
        evidence=[evidence],
        onset=network_survey.onset,
        mitigations=[
            Mitigation(
                action=f"Check {service}'s pods' network: node interface, traffic shaping rules, "
                "a noisy neighbour on the link",
                detail="the delay is between services, not inside them",
                risk="low",
            )
        ],
        service=service,
        slowed_edges=suspect.slowed,
        edges=suspect.edges,
        added_ms=round(suspect.added_ms, 2),
    )


def _gap(
    caller: str,
    callee: str,
    usual: float,
    spread: float | None,
    minutes: int,
    after: float,
    calls: int,
) -> EdgeGap:
    scale = max(1.4826 * (spread or 0.0), 0.1 * abs(usual), 1.0)
    z = (after - usual) / scale
    needed = MIN_Z * max(1.0, FULL_CALLS_AFTER / max(calls, 1)) ** 0.5
    slowed = after - usual >= MIN_ADDED_MS and z >= needed
    return EdgeGap(
        caller=caller,
        callee=callee,
        usual_ms=round(usual, 3),
        after_ms=round(after, 3),
        z=round(z, 3),
        slowed=slowed,
        calls_after=calls,
    )


LATENCY_SQL = """
select time_bucket(interval '1 minute', ts) as minute, avg(value) as value
from metrics where name = 'latency_p95_ms' and service = ? group by all order by minute"""


def _symptom_onset(telemetry: Telemetry, alert: Alert) -> datetime:
    """When the alerted service's latency began to rise (alerts wait for a breach to last, and
    sampled traces of a small service may hold no call after the alert), else the alert."""
    alert_at = naive(onset_of(alert))
    if alert.service and telemetry.has_table("metrics"):
        rows = telemetry.sql(LATENCY_SQL, [alert.service]).rows
        values = [float(r[1]) for r in rows]
        # A percentile of a minute's few requests dips now and then during a delay: a minute
        # counts as high when it or the one before it was.
        held = [max(values[max(i - 1, 0)], v) for i, v in enumerate(values)]
        began = series_onset([r[0] for r in rows], held, alert_at)
        if began is not None:
            return min(began, alert_at)
    return alert_at


def _shadow(suspect: NetworkSuspect, suspects: dict[str, NetworkSuspect]) -> bool:
    """Whether all the suspect's slowed edges lead to one peer with more slowed edges: then the
    delay is the peer's, seen from this side of the link."""
    peers = {
        g.callee if g.caller == suspect.service else g.caller for g in suspect.gaps if g.slowed
    }
    return len(peers) == 1 and any(
        p in suspects and suspects[p].slowed > suspect.slowed for p in peers
    )


def _suspect(
    service: str, edges: list[EdgeGap], by_service: dict[str, list[EdgeGap]]
) -> NetworkSuspect | None:
    """The service as a network suspect when most of its own edges slowed: all of them, or all
    in one direction (calls into it, or calls it makes)."""
    into = [e for e in edges if e.callee == service]
    out = [e for e in edges if e.caller == service]
    groups = {"into": into, "out of": out}
    if into and out:
        groups = {"into or out of": edges, **groups}
    found = [
        (strength, group, way)
        for way, group in groups.items()
        if (strength := _direction(service, group, by_service)) is not None
    ]
    if not found:
        return None
    strength, group, way = max(found, key=lambda f: f[0])
    slowed = [e for e in group if e.slowed]
    return NetworkSuspect(
        service=service,
        slowed=len(slowed),
        edges=len(group),
        added_ms=round(median(e.after_ms - e.usual_ms for e in group), 3),
        strength=round(strength, 4),
        direction=way,
        gaps=edges,
    )


def _direction(
    service: str, group: list[EdgeGap], by_service: dict[str, list[EdgeGap]]
) -> float | None:
    """The strength of the delay when most of these edges of the service slowed, else None."""
    slowed = [e for e in group if e.slowed]
    if not slowed or len(slowed) < MIN_SLOWED_SHARE * len(group):
        return None
    if len(slowed) < 2 and all(e.calls_after < FULL_CALLS_AFTER for e in slowed):
        return None  # one or two calls on one edge: a queue or a pause, not yet a link
    added = median(e.after_ms - e.usual_ms for e in group)
    if added < MIN_ADDED_MS:
        return None
    z = median(min(e.z, 50.0) for e in group)
    share = len(slowed) / len(group)
    # One slowed edge says as much about the peer as about this service, unless the peer's
    # other edges in the same role stayed as they were: then the delay is on this side.
    pinned = sum(1 for e in slowed if _peer_clear(service, e, by_service))
    corroboration = min(len(slowed) + pinned, 3) / 3
    return share * corroboration * z


def _peer_clear(service: str, edge: EdgeGap, by_service: dict[str, list[EdgeGap]]) -> bool:
    """Whether the peer across this edge kept its other edges of the same role (the calls it
    makes, or the calls it serves) as they were: at least PEER_EDGES of them, most unchanged."""
    calling = edge.callee == service  # the peer calls this service
    peer = edge.caller if calling else edge.callee
    others = [
        e
        for e in by_service.get(peer, [])
        if e is not edge and (e.caller == peer if calling else e.callee == peer)
    ]
    if len(others) < PEER_EDGES:
        return False
    return sum(1 for e in others if e.slowed) < MIN_SLOWED_SHARE * len(others)
