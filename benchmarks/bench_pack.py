"""The executor benchmark's analyzers: a dependency walk from the alerting service, then checks.

`dependency_walk` runs on the alerting service; its finding asks for itself on every service
that service calls, and for the four per-service checks on the service itself, so one alert at
the root of a 2,000-service tree fans out to 10,000 invocations. Every analyzer answers its
entity from one grouped query per worker (`telemetry.shared(...).by(...)`), the pattern
docs/scale.md describes.

The `trivial_*` twins have the same shape and run no query (the walk computes the tree from
the alert's `services` label), so a run of them measures the executor alone.
"""

from __future__ import annotations

from datetime import timedelta

from casebook.sdk import Alert, Entity, Finding, FollowUp, Severity, Telemetry, analyzer

CHECKS = ("error_ratio", "slow_calls", "traffic_shift", "failing_calls")
TRIVIAL_CHECKS = tuple(f"trivial_{name}" for name in CHECKS)
ONSET_BEFORE_ALERT = timedelta(minutes=10)


class Dependencies(Finding):
    service: str
    calls: list[str]


class ServiceProblem(Finding):
    service: str
    value: float


def _walk(service: str, calls: list[str], walk: str, checks: tuple[str, ...]) -> Dependencies:
    followups = [FollowUp(analyzer=walk, params={"service": callee}) for callee in calls]
    followups += [FollowUp(analyzer=check, params={"service": service}) for check in checks]
    return Dependencies(
        title=f"{service} calls {len(calls)} services",
        summary=f"{service} calls {len(calls)} services in the window.",
        severity=Severity.INFO,
        confidence=0.1,
        category="other",
        entities=[Entity.service(service)],
        service=service,
        calls=calls,
        followups=followups,
    )


def _problem(service: str, value: float, title: str, category: str) -> ServiceProblem:
    return ServiceProblem(
        title=title,
        summary=f"{title} in the window.",
        severity=Severity.CRITICAL,
        confidence=0.8,
        category=category,
        entities=[Entity.service(service)],
        service=service,
        value=value,
    )


@analyzer(match={"alertname": "RootErrorRate"}, timeout_s=30)
def dependency_walk(telemetry: Telemetry, service: str) -> Dependencies | None:
    """The services `service` calls, with follow-ups to walk them and to check `service`."""
    edges = telemetry.shared(
        "select caller, list(distinct service order by service) as calls "
        "from requests group by caller"
    ).by("caller")
    calls = list((edges.get(service) or {}).get("calls") or [])
    return _walk(service, calls, "dependency_walk", CHECKS)


@analyzer(when=lambda alert: False, timeout_s=30)
def error_ratio(telemetry: Telemetry, service: str) -> ServiceProblem | None:
    """More than 5% of the calls to `service` failed."""
    ratios = telemetry.shared(
        "select service, avg((status >= 500)::int) as ratio from requests group by service"
    ).by("service")
    ratio = (ratios.get(service) or {}).get("ratio") or 0.0
    if ratio <= 0.05:
        return None
    return _problem(service, ratio, f"{ratio:.0%} of calls to {service} failed", "code")


@analyzer(when=lambda alert: False, timeout_s=30)
def slow_calls(telemetry: Telemetry, service: str) -> ServiceProblem | None:
    """The 99th percentile latency of `service` is above half a second."""
    p99 = telemetry.shared(
        "select service, quantile_cont(latency_ms, 0.99) as p99 from requests group by service"
    ).by("service")
    value = (p99.get(service) or {}).get("p99") or 0.0
    if value <= 500:
        return None
    return _problem(service, value, f"{service} p99 latency is {value:.0f} ms", "resource")


@analyzer(when=lambda alert: False, timeout_s=30)
def traffic_shift(telemetry: Telemetry, alert: Alert, service: str) -> ServiceProblem | None:
    """The call rate to `service` changed by more than half after the onset."""
    onset = alert.starts_at - ONSET_BEFORE_ALERT
    counts = telemetry.shared(
        "select service, count(*) filter (where ts < ?) as before, "
        "count(*) filter (where ts >= ?) as after from requests group by service",
        [onset, onset],
    ).by("service")
    row = counts.get(service) or {}
    before_rate = (row.get("before") or 0) / max(
        (onset - telemetry.window.start).total_seconds(), 1
    )
    after_rate = (row.get("after") or 0) / max((telemetry.window.end - onset).total_seconds(), 1)
    if not before_rate or abs(after_rate / before_rate - 1) <= 0.5:
        return None
    change = after_rate / before_rate - 1
    return _problem(service, change, f"calls to {service} changed by {change:+.0%}", "capacity")


@analyzer(when=lambda alert: False, timeout_s=30)
def failing_calls(telemetry: Telemetry, service: str) -> ServiceProblem | None:
    """More than 5% of the calls `service` makes fail."""
    ratios = telemetry.shared(
        "select caller, avg((status >= 500)::int) as ratio from requests group by caller"
    ).by("caller")
    ratio = (ratios.get(service) or {}).get("ratio") or 0.0
    if ratio <= 0.05:
        return None
    return _problem(service, ratio, f"{ratio:.0%} of the calls {service} makes fail", "dependency")


# The same plan without data: the executor's own cost per invocation.
TREE_SIZE = 2_000
TREE_FANOUT = 13


@analyzer(match={"alertname": "TrivialRootErrorRate"}, timeout_s=30)
def trivial_walk(service: str, services: int = TREE_SIZE) -> Dependencies | None:
    """The benchmark tree's children of `service`, computed instead of queried."""
    index = int(service.removeprefix("svc-"))
    first = index * TREE_FANOUT + 1
    calls = [f"svc-{i:04d}" for i in range(first, min(first + TREE_FANOUT, services))]
    return _walk(service, calls, "trivial_walk", TRIVIAL_CHECKS)


@analyzer(name="trivial_error_ratio", when=lambda alert: False)
def trivial_error_ratio(service: str) -> ServiceProblem | None:
    """Nothing, at once."""
    return None


@analyzer(name="trivial_slow_calls", when=lambda alert: False)
def trivial_slow_calls(service: str) -> ServiceProblem | None:
    """Nothing, at once."""
    return None


@analyzer(name="trivial_traffic_shift", when=lambda alert: False)
def trivial_traffic_shift(service: str) -> ServiceProblem | None:
    """Nothing, at once."""
    return None


@analyzer(name="trivial_failing_calls", when=lambda alert: False)
def trivial_failing_calls(service: str) -> ServiceProblem | None:
    """Nothing, at once."""
    return None

