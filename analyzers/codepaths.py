"""Code paths: what each operation of a service does per call, and what stopped or started.

Every span of an operation leaves marks: the log lines it wrote (as templates) and the calls it
made. Before the onset some marks always go together (a log line every call writes, a line that
always follows another) and some never appear. A code fault shows as a mark that vanished from
calls that used to make it (an exception thrown before it, an early return), or one that
appeared (a new error). The service whose own operations changed, and whose callees' did not
change as much, is where the fault is.

The baseline is robust to other incidents in the history: a mark "always" goes with another
when it did in at least a quarter of the minutes (the upper quartile), and is "new" when it
was absent in at least half of them.

One mark says where a path broke rather than that it changed: the service whose reply a span
waited on last (`end: X`, through the span's own client spans). When callers' operations now
end right after X answers, where they used to go on, X's reply cut them short (a wrong value
or an error returned): that change counts for X, at half strength (the caller's own code may
have chosen to stop), and the callers' lost calls are X's doing.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from casebook.analyzers.dependencies import Signal, Suspect, call_graph, localize
from casebook.analyzers.network import NetworkSurvey
from casebook.analyzers.periods import naive, onset_of, with_history
from casebook.sdk import (
    Alert,
    Entity,
    Evidence,
    Finding,
    Severity,
    Telemetry,
    analyzer,
    from_finding,
)

# A log template: the message with ids and free-standing numbers masked, first six words.
# Numbers glued to a name stay (`Foo#53` is a source line, `v2` a version).
TEMPLATE_SQL = r"""array_to_string(string_split(regexp_replace(regexp_replace(regexp_replace(
    l.message,
    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<id>', 'g'),
    '[0-9a-fA-F]{16,}', '<id>', 'g'),
    '(^|[^A-Za-z0-9_#.-])[-+]?[0-9]+([.,:][0-9]+)*', '\1<n>', 'g'), ' ')[1:6], ' ')"""

MARKS_SQL = """
with sp as (
    select trace_id, span_id, parent_span_id, service, name as operation, start_ts,
           start_ts >= ? as after, time_bucket(interval '1 minute', start_ts) as minute
    from spans
), hop as (
    select c.trace_id, c.parent_span_id as span_id, c.span_id as via, c.start_ts, c.service,
           p.service as caller
    from sp c join sp p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
), remote as (
    -- each call a span made to another service, directly or through its own client span
    select trace_id, span_id, start_ts, service as callee from hop where service <> caller
    union all
    select h.trace_id, h.span_id, h.start_ts, g.service
    from hop h join hop g on g.trace_id = h.trace_id and g.span_id = h.via
    where h.service = h.caller and g.service <> g.caller
), marks as (
    select trace_id, span_id, 'end: ' || arg_max(callee, start_ts) as mark
    from remote group by trace_id, span_id
    union
    select s.trace_id, s.span_id,
           case when l.level in ('error', 'fatal') then 'error: ' else 'log: ' end
           || {template} as mark
    from logs l join sp s on l.trace_id = s.trace_id and l.span_id = s.span_id
    union
    select p.trace_id, p.span_id, 'call: ' || c.service || ' ' || c.operation
    from sp c join sp p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    union
    select trace_id, span_id, '<call>' from sp
), tagged as (
    select s.service, s.operation, s.after, s.minute, m.trace_id, m.span_id, m.mark
    from marks m join sp s on m.trace_id = s.trace_id and m.span_id = s.span_id
), anchors as (
    select service, operation, mark as anchor, minute, after, count(*) as n
    from tagged where mark not like 'end: %' group by all
), together as (
    select a.service, a.operation, a.mark as anchor, b.mark as event, a.minute, a.after,
           count(*) as k
    from tagged a join tagged b on a.trace_id = b.trace_id and a.span_id = b.span_id
    where b.mark <> a.mark and b.mark <> '<call>' and a.mark not like 'end: %'
    group by all
), events as (
    select distinct service, operation, mark as event from tagged where mark <> '<call>'
), grid as (
    select x.service, x.operation, x.anchor, e.event, x.minute, x.after, x.n,
           coalesce(t.k, 0) as k
    from anchors x
    join events e on e.service = x.service and e.operation = x.operation
                 and e.event <> x.anchor
    left join together t on t.service = x.service and t.operation = x.operation
         and t.anchor = x.anchor and t.event = e.event and t.minute = x.minute
         and t.after = x.after
)
select service, operation, anchor, event,
       sum(n) filter (where not after) as n_before, sum(k) filter (where not after) as k_before,
       sum(n) filter (where after) as n_after, sum(k) filter (where after) as k_after,
       quantile_cont(k / n, [0.25, 0.5, 0.75]) filter (where not after and n >= 3) as typical,
       count(*) filter (where not after and n >= 3) as minutes
from grid group by all
having sum(n) filter (where after) >= 3"""

ALWAYS = 0.9  # a mark "always" follows its anchor at or above this share (upper quartile)
RARE = 0.05  # a mark is "new" when its median share per minute was at most this...
RARE_OVERALL = 0.1  # ...and its share over the whole history at most this
MIN_MINUTES = 3  # minutes of history (with 3+ calls) needed to know what is usual
MIN_STRENGTH = 3.0
MAX_SUSPECTS = 8
MAX_CHANGES = 5
CALL = "<call>"
END = "end: "
END_FACTOR = 0.5  # a cut after X's reply counts for X at this share of its strength


class CodePathChange(BaseModel):
    """One mark whose share of an operation's calls changed."""

    service: str
    operation: str
    anchor: str  # `<call>` (every call) or the mark it used to accompany
    mark: str
    kind: Literal["new", "gone"]
    usual_share: float
    share_after: float
    calls_after: int
    strength: float

    @property
    def ended_at(self) -> str | None:
        """The callee whose reply now ends the operation's calls, for an `end:` mark."""
        return self.mark.removeprefix(END) if self.mark.startswith(END) else None

    def describe(self) -> str:
        """One line a person can read: what changed, in which operation, against what."""
        if self.ended_at is not None:
            return (
                f"{self.service}'s {self.operation} now ends right after {self.ended_at} "
                f"answers ({self.share_after:.0%} of {self.calls_after} calls after the onset, "
                f"usually {self.usual_share:.0%})"
            )
        base = "calls" if self.anchor == CALL else f"calls that {self.anchor!r}"
        verb = "stopped" if self.kind == "gone" else "started"
        return (
            f"{self.operation}: {self.mark!r} {verb} ({self.share_after:.0%} of "
            f"{self.calls_after} {base} after the onset, usually {self.usual_share:.0%})"
        )


class CodePathSurvey(Finding):
    suspects: list[str]
    placed: list[Suspect]
    changes: dict[str, list[CodePathChange]]
    graph_source: str


@analyzer(timeout_s=90, category="symptom", tags=("survey",),
          reads=["spans", "logs.message", "logs.span_id"])
def code_path_survey(alert: Alert, telemetry: Telemetry) -> CodePathSurvey | None:
    """Services whose operations stopped or started writing a log line or making a call."""
    if not (telemetry.has_table("spans") and telemetry.has_table("logs")):
        return None
    history = with_history(telemetry, alert)
    onset = naive(onset_of(alert))
    result = history.sql(MARKS_SQL.format(template=TEMPLATE_SQL), [onset])
    changes: dict[str, list[CodePathChange]] = {}
    for row in result:
        change = _judge(*row)
        if change is not None:
            changes.setdefault(change.ended_at or change.service, []).append(change)
    for found in changes.values():
        # Equal strengths (one mark seen from several anchors): the plainest description first.
        found.sort(key=lambda c: (-_weight(c), c.anchor != CALL, c.anchor, c.mark))
    signals = {s: Signal(_weight(found[0]), _weight(found[0])) for s, found in changes.items()}
    graph = call_graph(history)
    placed = [s for s in localize(signals, graph) if s.strength >= MIN_STRENGTH][:MAX_SUSPECTS]
    if not placed:
        return None
    top = placed[0]
    evidence = result.evidence(
        limit=0,
        note="per operation, anchor and mark: calls and marks "
        "before and after the onset, and the usual share per minute",
    )
    return CodePathSurvey(
        title=f"Code paths changed in {len(placed)} service{'s' if len(placed) > 1 else ''}",
        summary=f"Operations changed what they log or call after {onset:%H:%M} UTC in "
        f"{', '.join(s.service for s in placed)}; the likeliest origin is "
        f"{top.service}: {changes[top.service][0].describe()}.",
        severity=Severity.INFO,
        confidence=0.3,
        category="symptom",
        entities=[Entity.service(alert.service or top.service)],
        evidence=[evidence],
        onset=onset_of(alert),
        suspects=[s.service for s in placed],
        placed=placed,
        changes={s.service: changes[s.service][:MAX_CHANGES] for s in placed},
        graph_source=graph.source,
    )


class CodePathFault(Finding):
    service: str
    operation: str
    mark: str
    kind: str
    strength: float
    explained_by: list[str]


@analyzer(
    fan_out={"service": from_finding("code_path_survey", "suspects")}, timeout_s=20, category="code"
)
def code_path_change(
    service: str, code_path_survey: CodePathSurvey, network_survey: NetworkSurvey | None
) -> CodePathFault | None:
    """The service's own code took another path after the onset: a likely code fault."""
    suspect = next((s for s in code_path_survey.placed if s.service == service), None)
    found = code_path_survey.changes.get(service) or []
    if suspect is None or not found:
        return None
    delayed = _delayed_callee(service, network_survey)
    if delayed and suspect.is_origin:
        # Timeouts and retries change a caller's path: the slow link explains it.
        suspect = suspect.model_copy(update={"explained_by": [f"{delayed} (network)"]})
    elif suspect.is_origin and _delayed(service, network_survey) and all(
        c.ended_at == service for c in found
    ):
        # Callers that give up right after a slow reply: the delay, not the reply's content.
        suspect = suspect.model_copy(update={"explained_by": [f"{service} (network)"]})
    best = found[0]
    survey_query = code_path_survey.evidence[0] if code_path_survey.evidence else Evidence()
    evidence = Evidence(
        query=survey_query.query,
        params=survey_query.params,
        columns=[
            "operation",
            "anchor",
            "mark",
            "kind",
            "usual share",
            "share after",
            "calls after",
            "strength",
        ],
        rows=[
            [
                c.operation if c.service == service else f"{c.service}: {c.operation}",
                c.anchor,
                c.mark,
                c.kind,
                round(c.usual_share, 3),
                round(c.share_after, 3),
                c.calls_after,
                round(c.strength, 2),
            ]
            for c in found
        ],
        note=f"the strongest changes in {service}'s own spans, from the survey's query",
    )
    weight = suspect.strength / (suspect.strength + 12)
    if suspect.is_origin:
        why = "none of its callees changed as much"
        severity, confidence = Severity.CRITICAL, 0.55 + 0.42 * weight
    else:
        why = f"but its callee {', '.join(suspect.explained_by)} changed as much or more"
        severity, confidence = Severity.WARNING, 0.3 + 0.2 * weight
    return CodePathFault(
        title=f"{service} changed its code path in {best.operation}",
        summary=f"{best.describe()}; {why}.",
        severity=severity,
        confidence=round(confidence, 4),
        category="code",
        entities=[Entity.service(service)],
        evidence=[evidence],
        onset=code_path_survey.onset,
        service=service,
        operation=best.operation,
        mark=best.mark,
        kind=best.kind,
        strength=round(suspect.strength, 3),
        explained_by=suspect.explained_by,
    )


def _weight(change: CodePathChange) -> float:
    """A change's strength as evidence on the service it counts for."""
    return change.strength * (END_FACTOR if change.ended_at is not None else 1.0)


def _delayed(service: str, network_survey: NetworkSurvey | None) -> bool:
    """Whether the service is the likeliest network-delayed one."""
    return bool(network_survey and network_survey.placed and
                network_survey.placed[0].service == service)


def _delayed_callee(service: str, network_survey: NetworkSurvey | None) -> str | None:
    """The likeliest network-delayed service, when this service calls it over a slowed edge."""
    if network_survey is None or not network_survey.placed:
        return None
    top = network_survey.placed[0]
    slowed = any(g.slowed and g.caller == service and g.callee == top.service for g in top.gaps)
    return top.service if slowed and top.service != service else None


def _judge(
    service: str,
    operation: str,
    anchor: str,
    mark: str,
    n_before: int | None,
    k_before: int | None,
    n_after: int,
    k_after: int,
    typical: list[float] | None,
    minutes: int,
) -> CodePathChange | None:
    """One (operation, anchor, mark) row as a change, or None when it is not one."""
    share = k_after / n_after
    error = mark.startswith("error: ")
    if mark.startswith(END) and anchor != CALL:
        return None  # where a call ends is judged against every call only
    if minutes >= MIN_MINUTES and typical:
        low, middle, high = typical
    elif error and anchor == CALL:
        low = middle = high = 0.0  # no history: errors a service raises itself are new
    else:
        return None
    # A mark that stopped matters only if it is not an error (errors stopping is recovery), nor
    # where calls end (calls that go further than they did say nothing about that callee).
    if high >= ALWAYS and share < high and not error and not mark.startswith(END):
        usual, kind = min(high, 1 - 0.5 / n_after), "gone"
    elif (
        anchor == CALL
        and middle <= RARE
        and share > low
        and (k_before or 0) <= RARE_OVERALL * (n_before or 0)
    ):
        usual, kind = max(low, 0.5 / n_after), "new"
    else:
        return None
    strength = _binomial_g(k_after, n_after, usual) * abs(share - usual) ** 2
    if strength <= 0:
        return None
    return CodePathChange(
        service=service,
        operation=operation,
        anchor=anchor,
        mark=mark,
        kind=kind,
        usual_share=round(usual, 4),
        share_after=round(share, 4),
        calls_after=int(n_after),
        strength=round(strength, 4),
    )


def _binomial_g(k: int, n: int, p: float) -> float:
    """The G statistic of k successes in n against the usual share p (twice the log-likelihood
    ratio), large when k/n is far from p given n."""
    p = min(max(p, 1e-3), 1 - 1e-3)
    q = k / n
    total = 0.0
    if k > 0:
        total += k * math.log(q / p)
    if n - k > 0:
        total += (n - k) * math.log((1 - q) / (1 - p))
    return 2 * total
