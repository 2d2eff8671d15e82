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
    select trace_id, span_id, parent_span_id, service, name as operation,
           start_ts >= ? as after, time_bucket(interval '1 minute', start_ts) as minute
    from spans
), marks as (
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
    from tagged group by all
), together as (
    select a.service, a.operation, a.mark as anchor, b.mark as event, a.minute, a.after,
           count(*) as k
    from tagged a join tagged b on a.trace_id = b.trace_id and a.span_id = b.span_id
    where b.mark <> a.mark and b.mark <> '<call>'
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

    def describe(self) -> str:
        """One line a person can read: what changed, in which operation, against what."""
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
            changes.setdefault(change.service, []).append(change)
    for found in changes.values():
        # Equal strengths (one mark seen from several anchors): the plainest description first.
        found.sort(key=lambda c: (-c.strength, c.anchor != CALL, c.anchor, c.mark))
    signals = {s: Signal(found[0].strength, found[0].strength) for s, found in changes.items()}
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
                c.operation,
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
    if minutes >= MIN_MINUTES and typical:
        low, middle, high = typical
    elif error and anchor == CALL:
        low = middle = high = 0.0  # no history: errors a service raises itself are new
    else:
        return None
    # A mark that stopped matters only if it is not an error (errors stopping is recovery).
    if high >= ALWAYS and share < high and not error:
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
