"""Dependencies: the call graph, and which anomalous service the others' anomalies come from.

A service whose anomaly an anomalous callee accounts for is a symptom: its callee is closer to
the cause. What is left are the services where an anomaly starts; the one that accounts for the
most anomalous callers (directly or through other callers) explains the most of the incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from casebook.sdk import Telemetry, TelemetryError

SPAN_EDGES_SQL = """
select p.service as caller, c.service as callee, count(*) as calls
from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where c.service <> p.service
group by all order by calls desc"""
# Who calls whom, from parent spans and from the `peer.service` a client span names (a callee
# that sends no spans of its own). One text, so every analyzer reading it shares one scan.
CALL_EDGES_SQL = """
select distinct p.service as caller, c.service as callee
from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where c.service <> p.service
union
select distinct service, attributes['peer.service'] from spans
where attributes['peer.service'] is not null and attributes['peer.service'] <> service"""
TABLE_EDGES_SQL = "select distinct caller, callee from calls where caller <> callee"

# A callee accounts for its caller's anomaly when its own change is at least this share of it,
# or when it is at least as unusual and its change is not negligible beside the caller's (a
# request may call it several times, so its share of the caller's change can be small).
EXPLAINED_SHARE = 0.5
EXPLAINED_SHARE_WHEN_AS_UNUSUAL = 0.1
# How much an explained service's score keeps: it stays on the list, below its cause.
EXPLAINED_FACTOR = 0.2
# With `weigh_reach`: each anomalous caller a service accounts for adds weight (square root),
# and a service whose own callees were seen (and do not account for it) is a confirmed origin,
# while a leaf may only be the face of a dependency nobody measures.
CONFIRMED_ORIGIN_FACTOR = 1.5


@dataclass
class CallGraph:
    """Who calls whom, as caller -> callee edges between services."""

    edges: set[tuple[str, str]] = field(default_factory=set)
    source: str = ""

    def callees(self, service: str) -> set[str]:
        return {callee for caller, callee in self.edges if caller == service}

    def callers(self, service: str) -> set[str]:
        return {caller for caller, callee in self.edges if callee == service}

    @classmethod
    def of(cls, edges: Iterable[tuple[str, str]], source: str = "") -> CallGraph:
        return cls({(str(a), str(b)) for a, b in edges if a != b}, source)


def call_graph(telemetry: Telemetry) -> CallGraph:
    """The call graph from the `calls` table (caller, callee) if there is one, else from spans."""
    if telemetry.has_table("calls"):
        try:
            rows = telemetry.sql(TABLE_EDGES_SQL)
            return CallGraph.of(((r[0], r[1]) for r in rows), "the calls table")
        except TelemetryError:
            pass  # a calls table without caller/callee columns: fall back to the traces
    if telemetry.has_table("spans"):
        rows = telemetry.sql(SPAN_EDGES_SQL)
        return CallGraph.of(((r[0], r[1]) for r in rows), "parent/child spans")
    return CallGraph()


class Suspect(BaseModel):
    """One anomalous service, placed on the call graph."""

    service: str
    strength: float  # how unusual its own change is (comparable within one survey)
    magnitude: float  # the size of the change in the measure's units
    score: float  # strength, lowered when explained, raised by what it accounts for
    explained_by: list[str] = []  # anomalous callees that account for its change
    accounts_for: list[str] = []  # anomalous callers (direct or further up) it accounts for
    confirmed: bool = False  # it has callees, and none of them accounts for its change

    @property
    def is_origin(self) -> bool:
        return not self.explained_by


@dataclass(frozen=True)
class Signal:
    """A service's anomaly as a survey measured it."""

    strength: float
    magnitude: float


def localize(
    signals: Mapping[str, Signal], graph: CallGraph, *, weigh_reach: bool = False
) -> list[Suspect]:
    """The anomalous services placed on the call graph, most likely origin first.

    >>> graph = CallGraph.of([("web", "api"), ("api", "db")])
    >>> found = localize({"web": Signal(9, 2.0), "api": Signal(5, 1.9), "db": Signal(4, 1.8)},
    ...                  graph)
    >>> [(s.service, s.explained_by) for s in found]
    [('db', []), ('web', ['api']), ('api', ['db'])]
    """
    explained = {
        service: sorted(
            callee
            for callee in graph.callees(service)
            if callee in signals and _accounts(signals[callee], signal)
        )
        for service, signal in signals.items()
    }
    suspects = []
    for service, signal in signals.items():
        reach = _accounted_for(service, explained, graph)
        confirmed = bool(graph.callees(service)) and not explained[service]
        score = signal.strength
        if explained[service]:
            score *= EXPLAINED_FACTOR
        if weigh_reach:
            score *= (1 + len(reach)) ** 0.5
            if confirmed:
                score *= CONFIRMED_ORIGIN_FACTOR
        suspects.append(
            Suspect(
                service=service,
                strength=round(signal.strength, 4),
                magnitude=round(signal.magnitude, 6),
                score=round(score, 4),
                explained_by=explained[service],
                accounts_for=sorted(reach),
                confirmed=confirmed,
            )
        )
    suspects.sort(key=lambda s: (-s.score, s.service))
    return suspects


def _accounts(callee: Signal, caller: Signal) -> bool:
    """Whether the callee's anomaly can account for the caller's."""
    if callee.magnitude >= EXPLAINED_SHARE * caller.magnitude:
        return True
    return (
        callee.strength >= caller.strength
        and callee.magnitude >= EXPLAINED_SHARE_WHEN_AS_UNUSUAL * caller.magnitude
    )


def _accounted_for(service: str, explained: Mapping[str, list[str]], graph: CallGraph) -> set[str]:
    """Anomalous callers whose anomaly runs back to `service`, through explained callers."""
    seen: set[str] = set()
    frontier = [service]
    while frontier:
        current = frontier.pop()
        for caller in graph.callers(current):
            if caller not in seen and current in explained.get(caller, ()):
                seen.add(caller)
                frontier.append(caller)
    seen.discard(service)
    return seen
