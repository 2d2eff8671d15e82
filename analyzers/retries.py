"""Retries: a small dependency started failing and its callers' retries multiplied the load.

The service with the most errors in a retry storm is usually a caller; the root is the
dependency whose failures they retry. It shows in the traces as more calls to it per calling
span (the retries) while most of them fail, and in the counters as a request rate that jumps
while the rate of its callers stays as it was, with most of the extra requests failing.
"""

from __future__ import annotations

from datetime import datetime

from casebook.analyzers.dependencies import CALL_EDGES_SQL
from casebook.analyzers.periods import METRIC_LEAD, naive, onset_of, series_onset
from casebook.analyzers.shapes import counter_rates
from casebook.sdk import (
    Alert,
    Entity,
    Evidence,
    Finding,
    Mitigation,
    QueryResult,
    Severity,
    Telemetry,
    analyzer,
)
from casebook.sdk.models import utc

ATTEMPTS_SQL = """
with calls as (
    -- client spans that name their callee (retries are new client spans of the same parent)
    select trace_id, parent_span_id as parent, attributes['peer.service'] as callee, start_ts,
           (status = 'error')::int as failed
    from spans where attributes['peer.service'] is not null
    union all
    -- else a callee's span under a span of another service
    select c.trace_id, c.parent_span_id, c.service, c.start_ts, (c.status = 'error')::int
    from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    where c.service <> p.service and p.attributes['peer.service'] is null
)
select callee, min(start_ts) as first, count(*) as attempts, sum(failed) as failed
from calls group by callee, trace_id, parent order by callee, first"""
# Where a request enters each service (no parent, or a parent of another service), and whether
# it failed there by itself (no failing child): a dependency that rejects requests, not one that
# passes its own callees' failures or slowness along.
RAISED_SQL = """
select c.service, c.start_ts,
       (c.status = 'error' and not exists (
           select 1 from spans k
           where k.trace_id = c.trace_id and k.parent_span_id = c.span_id
             and k.status = 'error'))::int as raised,
       (c.status = 'error')::int as failed
from spans c left join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where p.span_id is null or p.service <> c.service"""
MIN_RETRY_FACTOR = 1.3  # calls per calling span, after over before
MIN_RATE_FACTOR = 1.8  # without traces: requests per minute, after over before
MIN_RATE_OUTGROWN = 1.3  # the same, when its callers are known and sent no more than before
# Share of the calls to it that fail after the onset, and how much higher that must be than
# before it. A dependency that fails 30% of its attempts shows 20-35% in a small sample (a
# small dependency serves few requests a minute), so the floor sits below the smallest storm;
# what tells a new failure from a usual error rate is the rise.
MIN_FAILING = 0.2
USUAL_FAILING_FACTOR = 4.0  # failing after at least this many times the share before
MIN_PARENTS = 10  # calling spans before the onset (a usual number of calls per span)
MIN_PARENTS_AFTER = 4  # calling spans after it: traces are sampled, the storm is minutes old
MIN_RAISED = 0.5  # of the failed calls to a traced dependency, the share it failed by itself
OWN_GROWTH = 1.3  # its request rate grew this much more than its callers' (else it is demand)


class RetryStorm(Finding):
    dependency: str
    retry_factor: float
    error_ratio: float
    source: str


@analyzer(timeout_s=30, category="dependency",
          reads=["spans", "attributes:peer.service", "metrics:http_requests_total",
                 "metrics:http_errors_total"])
def retry_storm(alert: Alert, telemetry: Telemetry) -> RetryStorm | None:
    """A failing dependency whose callers call it again and again: the root of a retry storm.

    Each service is split where its own errors began (its error counter, up to a quarter hour
    before the alert), else a few minutes before the alert.
    """
    alert_at = naive(onset_of(alert))
    onsets = _error_onsets(telemetry, alert_at)
    found = _from_spans(telemetry, alert_at, onsets) if telemetry.has_table("spans") else None
    found = found or _from_counters(telemetry, alert_at, onsets)
    if found is None:
        return None
    dependency, factor, failing, source, evidence = found
    split = onsets.get(dependency, alert_at - METRIC_LEAD)
    return RetryStorm(
        title=f"Retry storm on {dependency}",
        summary=f"{dependency} failed {failing:.0%} of its calls after {split:%H:%M} UTC and "
                f"its callers retried: {factor:.1f}x the usual {source}.",
        severity=Severity.CRITICAL, confidence=0.85, category="dependency",
        entities=[Entity.service(dependency)], evidence=[evidence], onset=utc(split),
        explains=["error_log_spike", "error_origin", "traffic_surge", "compute_saturation",
                  "code_path_change", "failure_origin"],
        mitigations=[Mitigation(action=f"Fix or fail fast on {dependency}; cap retries with "
                                       "backoff and a budget in its callers",
                                detail="retries multiply the load on the failing dependency",
                                risk="low")],
        dependency=dependency, retry_factor=round(factor, 3), error_ratio=round(failing, 4),
        source=source,
    )


Found = tuple[str, float, float, str, Evidence]


def _error_onsets(telemetry: Telemetry, alert_at: datetime) -> dict[str, datetime]:
    """When each service's errors began, from `http_errors_total` (absent: not known)."""
    if not telemetry.has_table("metrics"):
        return {}
    services = telemetry.metric_services().get("http_errors_total", [])
    if not services:
        return {}
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for service, minute, value in counter_rates(telemetry, "http_errors_total", services).rows:
        times, values = series.setdefault(service, ([], []))
        times.append(minute)
        values.append(float(value))
    onsets = {}
    for service, (times, values) in series.items():
        onset = series_onset(times, values, alert_at)
        if onset is not None:
            onsets[service] = onset
    return onsets


def _from_spans(telemetry: Telemetry, alert_at: datetime,
                onsets: dict[str, datetime]) -> Found | None:
    result = telemetry.sql(ATTEMPTS_SQL)
    calls: dict[str, list[tuple[datetime, int, int]]] = {}
    for callee, first, attempts, failed in result.rows:
        calls.setdefault(callee, []).append((first, attempts, failed))
    entries: dict[str, list[tuple[datetime, int]]] = {}
    for service, start, raised, _ in telemetry.shared(RAISED_SQL).rows:
        entries.setdefault(service, []).append((start, raised))
    best, shown = None, []
    for callee, parents in sorted(calls.items()):
        split = onsets.get(callee, alert_at - METRIC_LEAD)
        before = [p for p in parents if p[0] < split]
        after = [p for p in parents if p[0] >= split]
        if len(before) < MIN_PARENTS or len(after) < MIN_PARENTS_AFTER:
            continue
        usual = sum(p[1] for p in before) / len(before)
        attempts = sum(p[1] for p in after)
        factor = attempts / len(after) / usual
        failed = sum(p[2] for p in after)
        failing = failed / attempts
        usual_failing = sum(p[2] for p in before) / sum(p[1] for p in before)
        served = [e[1] for e in entries.get(callee, []) if e[0] >= split]
        raised = sum(served) / failed if served and failed else None
        shown.append([callee, f"{split:%H:%M}", len(before), round(usual, 2), len(after),
                      round(attempts / len(after), 2), round(failing, 3),
                      None if raised is None else round(raised, 3)])
        if raised is not None and raised < MIN_RAISED:
            continue  # it failed because its own callees failed or were slow: not the root
        if factor >= MIN_RETRY_FACTOR and _newly_failing(failing, usual_failing):
            score = factor * failing
            if best is None or score > best[0]:
                best = (score, callee, factor, failing)
    if best is None:
        return None
    _, callee, factor, failing = best
    columns = ["callee", "split", "calling spans before", "calls per span before",
               "calling spans after", "calls per span after", "failing after",
               "failures it raised itself"]
    evidence = QueryResult(result.query, [], columns, shown).evidence(
        note="calls to each service per calling span, before and after its errors began")
    return callee, factor, failing, "calls per calling span", evidence


def _from_counters(telemetry: Telemetry, alert_at: datetime,
                   onsets: dict[str, datetime]) -> Found | None:
    catalog = telemetry.metric_services()
    if not {"http_requests_total", "http_errors_total"} <= catalog.keys():
        return None
    services = catalog["http_errors_total"]
    if not services:
        return None
    default = alert_at - METRIC_LEAD
    requests = _before_after(counter_rates(telemetry, "http_requests_total", services),
                             onsets, default)
    errors = _before_after(counter_rates(telemetry, "http_errors_total", services), onsets,
                           default)
    callers = _callers(telemetry)
    raised = _raised_shares(telemetry, onsets, default)
    best = None
    for service, (before, after) in requests.items():
        if before <= 0:
            continue
        factor = after / before
        errors_before, errors_after = errors.get(service, (0.0, 0.0))
        failing = errors_after / after if after else 0.0
        if factor < MIN_RATE_OUTGROWN or not _newly_failing(failing, errors_before / before):
            continue
        if raised.get(service, 1.0) < MIN_RAISED:
            continue  # its traced failures came from its own callees: not the root
        if callers is None:
            if factor < MIN_RATE_FACTOR:
                continue  # nothing to compare with: only a jump this large is retries
        elif not _outgrew_callers(service, factor, callers, requests):
            continue  # its callers sent that much more: demand, not retries
        score = factor * failing / (1.0 + before) ** 0.1  # a small dependency first
        if best is None or score > best[0]:
            best = (score, service, factor, failing)
    if best is None:
        return None
    _, service, factor, failing = best
    note = "requests per minute of each service before and after its errors began"
    shown = [[s, round(b, 2), round(a, 2)] for s, (b, a) in sorted(requests.items())]
    evidence = QueryResult("", [], ["service", "before", "after"], shown).evidence(note=note)
    return service, factor, failing, "request rate", evidence


def _newly_failing(failing: float, usual: float) -> bool:
    """Whether a share of failing calls is a new failure: high enough, and well above the share
    that failed before the onset."""
    return failing >= MIN_FAILING and failing >= USUAL_FAILING_FACTOR * usual


def _raised_shares(telemetry: Telemetry, onsets: dict[str, datetime],
                   default: datetime) -> dict[str, float]:
    """Per traced service, the share of its failed requests after its onset that it failed by
    itself (no failing call of its own)."""
    if not telemetry.has_table("spans"):
        return {}
    counts: dict[str, list[int]] = {}
    for service, start, raised, failed in telemetry.shared(RAISED_SQL).rows:
        if failed and start >= onsets.get(service, default):
            tally = counts.setdefault(service, [0, 0])
            tally[0] += raised
            tally[1] += failed
    return {s: r / f for s, (r, f) in counts.items() if f}


def _callers(telemetry: Telemetry) -> dict[str, set[str]] | None:
    """Who calls whom, from the traces (None: no traces to tell)."""
    if not telemetry.has_table("spans"):
        return None
    graph: dict[str, set[str]] = {}
    for caller, callee in telemetry.shared(CALL_EDGES_SQL).rows:
        graph.setdefault(callee, set()).add(caller)
    return graph or None


def _outgrew_callers(service: str, factor: float, callers: dict[str, set[str]],
                     requests: dict[str, tuple[float, float]]) -> bool:
    """Whether the service's request rate grew well beyond its callers': retries, not demand.
    A service nobody calls (the edge) serves demand."""
    mine = callers.get(service)
    if not mine:
        return False
    grown = [a / b for c in mine if c in requests and (b := requests[c][0]) > 0
             for a in [requests[c][1]]]
    return not grown or factor >= OWN_GROWTH * max(grown)


def _before_after(rates: QueryResult, onsets: dict[str, datetime],
                  default: datetime) -> dict[str, tuple[float, float]]:
    sums: dict[str, list[list[float]]] = {}
    for service, minute, value in rates.rows:
        parts = sums.setdefault(service, [[], []])
        parts[0 if minute < onsets.get(service, default) else 1].append(float(value))
    return {s: (sum(b) / len(b) if b else 0.0, sum(a) / len(a) if a else 0.0)
            for s, (b, a) in sums.items()}
