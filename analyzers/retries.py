"""Retries: a small dependency started failing and its callers' retries multiplied the load.

The service with the most errors in a retry storm is usually a caller; the root is the
dependency whose failures they retry. It shows in the traces as more calls to it per calling
span (the retries) while most of them fail, and in the counters as a request rate that jumps
while the rate of its callers stays as it was, with most of the extra requests failing.
"""

from __future__ import annotations

from datetime import datetime

from casebook.analyzers.periods import METRIC_LEAD, naive, onset_of
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
    select trace_id, parent_span_id as parent, attributes['peer.service'] as callee,
           start_ts >= ? as after, (status = 'error')::int as failed
    from spans where attributes['peer.service'] is not null
    union all
    -- else a callee's span under a span of another service
    select c.trace_id, c.parent_span_id, c.service, c.start_ts >= ?,
           (c.status = 'error')::int
    from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    where c.service <> p.service and p.attributes['peer.service'] is null
), per_parent as (
    select callee, after, trace_id, parent, count(*) as attempts, avg(failed) as failed
    from calls group by all
)
select callee, avg(attempts) filter (where not after) as usual_attempts,
       avg(attempts) filter (where after) as attempts_after,
       sum(attempts * failed) filter (where after)
           / sum(attempts) filter (where after) as error_ratio_after,
       count(*) filter (where not after) as parents_before,
       count(*) filter (where after) as parents_after
from per_parent group by callee order by callee"""
MIN_RETRY_FACTOR = 1.8  # calls per calling span, after over before
MIN_FAILING = 0.3  # share of the calls to it that fail after the onset
MIN_PARENTS = 10


class RetryStorm(Finding):
    dependency: str
    retry_factor: float
    error_ratio: float
    source: str


@analyzer(timeout_s=30, category="dependency",
          reads=["spans", "attributes:peer.service", "metrics:http_requests_total",
                 "metrics:http_errors_total"])
def retry_storm(alert: Alert, telemetry: Telemetry) -> RetryStorm | None:
    """A failing dependency whose callers call it again and again: the root of a retry storm."""
    split = naive(onset_of(alert)) - METRIC_LEAD
    found = _from_spans(telemetry, split) if telemetry.has_table("spans") else None
    found = found or _from_counters(telemetry, split)
    if found is None:
        return None
    dependency, factor, failing, source, evidence = found
    return RetryStorm(
        title=f"Retry storm on {dependency}",
        summary=f"{dependency} failed {failing:.0%} of its calls after {split:%H:%M} UTC and "
                f"its callers retried: {factor:.1f}x the usual {source}.",
        severity=Severity.CRITICAL, confidence=0.85, category="dependency",
        entities=[Entity.service(dependency)], evidence=[evidence], onset=utc(split),
        explains=["error_log_spike", "error_origin", "traffic_surge", "compute_saturation"],
        mitigations=[Mitigation(action=f"Fix or fail fast on {dependency}; cap retries with "
                                       "backoff and a budget in its callers",
                                detail="retries multiply the load on the failing dependency",
                                risk="low")],
        dependency=dependency, retry_factor=round(factor, 3), error_ratio=round(failing, 4),
        source=source,
    )


Found = tuple[str, float, float, str, Evidence]


def _from_spans(telemetry: Telemetry, split: datetime) -> Found | None:
    result = telemetry.sql(ATTEMPTS_SQL, [split, split])
    best = None
    for callee, usual, after, failing, before_n, after_n in result.rows:
        if not usual or after is None or before_n < MIN_PARENTS or after_n < MIN_PARENTS:
            continue
        factor = after / usual
        if factor >= MIN_RETRY_FACTOR and (failing or 0) >= MIN_FAILING:
            score = factor * failing
            if best is None or score > best[0]:
                best = (score, callee, factor, failing)
    if best is None:
        return None
    _, callee, factor, failing = best
    return (callee, factor, failing, "calls per calling span",
            result.evidence(note="calls to each service per calling span, before and after"))


def _from_counters(telemetry: Telemetry, split: datetime) -> Found | None:
    names = {r[0] for r in telemetry.shared("select distinct name from metrics")}
    if not {"http_requests_total", "http_errors_total"} <= names:
        return None
    services = [r[0] for r in telemetry.shared(
        "select distinct service from metrics where name = 'http_errors_total'")]
    if not services:
        return None
    requests = _before_after(counter_rates(telemetry, "http_requests_total", services), split)
    errors = _before_after(counter_rates(telemetry, "http_errors_total", services), split)
    best = None
    for service, (before, after) in requests.items():
        if before <= 0:
            continue
        factor = after / before
        failing = errors.get(service, (0.0, 0.0))[1] / after if after else 0.0
        if factor >= MIN_RETRY_FACTOR and failing >= MIN_FAILING:
            score = factor * failing / (1.0 + before) ** 0.1  # a small dependency first
            if best is None or score > best[0]:
                best = (score, service, factor, failing)
    if best is None:
        return None
    _, service, factor, failing = best
    note = "requests per minute of each service before and after the onset"
    shown = [[s, round(b, 2), round(a, 2)] for s, (b, a) in sorted(requests.items())]
    evidence = QueryResult("", [], ["service", "before", "after"], shown).evidence(note=note)
    return service, factor, failing, "request rate", evidence


def _before_after(rates: QueryResult, split: datetime) -> dict[str, tuple[float, float]]:
    sums: dict[str, list[list[float]]] = {}
    for service, minute, value in rates.rows:
        parts = sums.setdefault(service, [[], []])
        parts[0 if minute < split else 1].append(float(value))
    return {s: (sum(b) / len(b) if b else 0.0, sum(a) / len(a) if a else 0.0)
            for s, (b, a) in sums.items()}
