"""casebook watching itself: its own exported spans (`--otel FILE`, ingested) as telemetry.

Alert on casebook's own metrics (an alert named Casebook...) and these analyzers say which
analyzer fails or slows the investigations.
"""

from __future__ import annotations

import re

from casebook.sdk import Entity, Finding, Severity, Telemetry, analyzer

ABOUT_CASEBOOK = {"alertname": re.compile("Casebook.*")}


class FailingAnalyzer(Finding):
    analyzer: str
    failures: int


@analyzer(match=ABOUT_CASEBOOK, timeout_s=15, category="code",
          reads=["spans.status", "attributes:casebook.analyzer"])
def failing_analyzer(telemetry: Telemetry) -> FailingAnalyzer | None:
    """The analyzer whose invocations failed most often, from casebook's own spans."""
    worst = telemetry.sql(
        "select name, count(*) as failures from spans where service = 'casebook' "
        "and status = 'error' and attributes['casebook.analyzer'] is not null "
        "group by name order by failures desc, name limit 1"
    )
    if not worst:
        return None
    name, failures = worst.rows[0]
    return FailingAnalyzer(
        title=f"analyzer {name} failed {failures} times",
        summary=f"{name} failed {failures} times in the window",
        severity=Severity.WARNING, category="code",
        entities=[Entity(kind="analyzer", name=name)], evidence=[worst.evidence()],
        analyzer=name, failures=failures,
    )


class SlowAnalyzer(Finding):
    analyzer: str
    p95_ms: float
    invocations: int


@analyzer(match=ABOUT_CASEBOOK, timeout_s=15, category="code",
          reads=["spans.duration_ms", "attributes:casebook.analyzer"])
def slow_analyzer(telemetry: Telemetry) -> SlowAnalyzer | None:
    """The analyzer that spends the most time per investigation, when it dominates."""
    rows = telemetry.sql(
        "select name, sum(duration_ms) as total, quantile_cont(duration_ms, 0.95) as p95, "
        "count(*) as n from spans where service = 'casebook' "
        "and attributes['casebook.analyzer'] is not null group by name order by total desc"
    )
    if len(rows) < 2:
        return None
    (name, total, p95, count), (_, runner_up, _, _) = rows.rows[0], rows.rows[1]
    if total < 3 * runner_up or total < 1000:
        return None
    return SlowAnalyzer(
        title=f"analyzer {name} takes most of the time",
        summary=f"{name} spent {total:.0f} ms over {count} invocations (p95 {p95:.0f} ms), "
                f"more than 3x any other analyzer.",
        severity=Severity.INFO, confidence=0.6, category="code",
        entities=[Entity(kind="analyzer", name=name)], evidence=[rows.evidence(limit=10)],
        analyzer=name, p95_ms=round(p95, 1), invocations=count,
    )
