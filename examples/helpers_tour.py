"""The analysis helpers, one runnable snippet each; docs/helpers.md quotes them and the tests run them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from casebook.sdk import Entity, Evidence, Finding, Severity, Telemetry, analyzer
from casebook.sdk.bursts import Burst, Concentration, burst, concentration
from casebook.sdk.correlate import LeadLag, lead_lag
from casebook.sdk.detect import Comparison, Onset, compare, detect_onset
from casebook.sdk.drilldown import DrillDown, drill_down, slice_name
from casebook.sdk.events import RankedEvent, isolate_events
from casebook.sdk.logmine import TemplateChange, mine_templates
from casebook.sdk.series import Series
from casebook.sdk.traces import TraceAnalysis, analyze_spans

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    """START plus n minutes."""
    return START + timedelta(minutes=n)


# --- series from query rows ------------------------------------------------------------------
def latency_series() -> Series:
    """p95 latency per minute: steady around 120 ms, then 300 ms from minute 40."""
    rng = np.random.default_rng(7)
    rows = [
        {"ts": minutes(i), "value": (300.0 if i >= 40 else 120.0) + rng.normal(0, 8)}
        for i in range(60)
    ]
    series = Series.from_rows(rows, time="ts", value="value", name="p95_ms")
    return series.resample(timedelta(minutes=5), how="max")


# --- onset of a shift ------------------------------------------------------------------------
def latency_onset() -> Onset | None:
    """Where p95 latency stepped up, against the half hour before."""
    rng = np.random.default_rng(7)
    values = [(300.0 if i >= 40 else 120.0) + rng.normal(0, 8) for i in range(60)]
    latency = Series.from_points([(minutes(i), v) for i, v in enumerate(values)], name="p95_ms")
    onset = detect_onset(
        latency.between(start=minutes(30)), baseline=latency.between(end=minutes(30))
    )
    # onset.at == minutes(40), onset.direction == "up", onset.ratio ~ 2.5
    return onset


# --- before/after comparison -----------------------------------------------------------------
def deploy_comparison() -> Comparison:
    """The error ratio in the minutes before and after a deploy."""
    before = [0.010, 0.012, 0.011, 0.009, 0.010, 0.013, 0.011, 0.010]  # error ratio per minute
    after = [0.031, 0.029, 0.035, 0.030, 0.033, 0.028, 0.032, 0.030]
    result = compare(before, after)
    # result.direction == "up", result.significant, result.relative_change ~ 1.9
    return result


# --- dimension drill-down --------------------------------------------------------------------
def error_rate_drill_down() -> DrillDown:
    """Which region/version/device slice explains the rise in the error rate."""
    rows = []
    for region in ("eu", "us", "ap"):
        for version in ("v1", "v2"):
            for device in ("ios", "android", "web"):
                requests = 1000
                errors = 100 if (region == "eu" and version == "v2") else 10
                rows.append(
                    {
                        "region": region,
                        "version": version,
                        "device": device,
                        "errors": errors,
                        "requests": requests,
                        "errors_before": 10,
                        "requests_before": 1000,
                    }
                )
    result = drill_down(
        rows,
        ["region", "version", "device"],
        value="errors",
        baseline="errors_before",
        count="requests",
        baseline_count="requests_before",
    )
    # result.names == ["region=eu&version=v2"]: the slice, not one of its devices
    return result


def slice_label() -> str:
    """A slice's canonical name."""
    return slice_name({"version": "v2", "region": "eu"})  # "region=eu&version=v2"


# --- lead/lag ----------------------------------------------------------------------------------
def cache_leads_latency() -> LeadLag:
    """The cache hit ratio fell three minutes before latency rose."""
    rng = np.random.default_rng(3)
    hit_ratio = [(0.95 if i < 50 else 0.40) + rng.normal(0, 0.01) for i in range(90)]
    latency = [(100.0 if i < 53 else 400.0) + rng.normal(0, 10) for i in range(90)]
    cause = Series.from_points([(minutes(i), v) for i, v in enumerate(hit_ratio)], name="hit_ratio")
    symptom = Series.from_points([(minutes(i), v) for i, v in enumerate(latency)], name="latency")
    result = lead_lag(cause, symptom, max_lag=10)
    # result.leader == "cause", result.lag == 3 minutes: the cache fell before latency rose
    return result


# --- events near the onset -------------------------------------------------------------------
def suspect_changes() -> list[RankedEvent]:
    """Changes before the onset, ranked as suspects for the checkout service."""
    events = [
        {"ts": minutes(38), "kind": "deploy", "service": "checkout", "summary": "checkout v2.3.1"},
        {"ts": minutes(20), "kind": "config", "service": "payments", "summary": "raise timeout"},
        {"ts": minutes(39), "kind": "flag", "service": "*", "summary": "new_pricing on"},
        {"ts": minutes(45), "kind": "deploy", "service": "checkout", "summary": "rollback"},
    ]
    ranked = isolate_events(
        events,
        onset=minutes(40),
        window=timedelta(hours=1),
        service="checkout",
        dependencies={"payments"},
    )
    # the deploy of checkout first; the rollback after the onset is left out
    return ranked


# --- log templates ---------------------------------------------------------------------------
def new_log_templates() -> list[TemplateChange]:
    """Log templates of two ten-minute periods, most changed first."""
    before = [f"GET /cart/{i} 200 in {10 + i % 7} ms" for i in range(200)]
    after = [f"GET /cart/{i} 200 in {12 + i % 5} ms" for i in range(180)] + [
        f"payment {i:08x}-aaaa-bbbb-cccc-0123456789ab failed: upstream timeout after 3000 ms"
        for i in range(40)
    ]
    changes = mine_templates(before, after, before_duration=600, after_duration=600)
    # changes[0].status == "new": "payment <UUID> failed: upstream timeout after <NUM> ms"
    return changes


# --- trace analysis --------------------------------------------------------------------------
def span_rows(trace: str, db_ms: float, db_status: str) -> list[dict[str, object]]:
    """One trace: frontend -> checkout -> orders-db."""
    failed = db_status == "error"
    return [
        {
            "trace_id": trace,
            "span_id": "1",
            "parent_span_id": "",
            "service": "frontend",
            "name": "GET /checkout",
            "duration_ms": 30 + db_ms + 20,
            "status": "error" if failed else "ok",
        },
        {
            "trace_id": trace,
            "span_id": "2",
            "parent_span_id": "1",
            "service": "checkout",
            "name": "place_order",
            "duration_ms": db_ms + 20,
            "status": "error" if failed else "ok",
        },
        {
            "trace_id": trace,
            "span_id": "3",
            "parent_span_id": "2",
            "service": "orders-db",
            "name": "INSERT orders",
            "duration_ms": db_ms,
            "status": db_status,
        },
    ]


def error_and_latency_origin() -> TraceAnalysis:
    """Where the errors start and which service added the latency."""
    baseline = [row for i in range(20) for row in span_rows(f"b{i}", 15, "ok")]
    spans = [
        row for i in range(20) for row in span_rows(f"t{i}", 250, "error" if i % 4 == 0 else "ok")
    ]
    result = analyze_spans(spans, baseline=baseline)
    # result.error_origin.service == result.latency_origin.service == "orders-db"
    return result


# --- concentration and bursts ----------------------------------------------------------------
def requests_by_account() -> Concentration:
    """One account sends most of the requests; usually none does."""
    now = {"acct-big": 9000, **{f"acct-{i}": 50 for i in range(20)}}
    usual = {"acct-big": 60, **{f"acct-{i}": 60 for i in range(20)}}
    result = concentration(now, top=3, baseline=usual)
    # result.top[0].key == "acct-big" with 90% of the requests; usually 1/21 each
    return result


def signup_burst() -> Burst | None:
    """Sixty accounts created within two minutes."""
    created = [minutes(i * 2 + 1) for i in range(60)]  # one account every two minutes
    created += [minutes(125) + timedelta(seconds=s) for s in range(0, 120, 2)]  # 60 in 2 min
    ids = [f"user-{i}" for i in range(len(created))]
    found = burst(created, window=timedelta(minutes=2), keys=ids)
    # found.count == 60, found.p_value tiny, found.keys lists the accounts in the burst
    return found


# --- in an analyzer ----------------------------------------------------------------------------
class LatencyShift(Finding):
    """A sustained rise in a service's p95 latency."""

    service: str
    ratio: float


@analyzer(timeout_s=10)
def latency_shift(telemetry: Telemetry, service: str) -> LatencyShift | None:
    """A sustained shift in the service's p95 latency, with where it began."""
    query = (
        "select ts, value from metrics where name = 'latency_p95_ms' and service = ? order by ts"
    )
    now = Series.from_rows(telemetry.sql(query, [service]), name="p95_ms")
    before = Series.from_rows(telemetry.baseline().sql(query, [service]))
    onset = detect_onset(now, baseline=before)
    if onset is None or onset.direction != "up":
        return None
    return LatencyShift(
        title=f"{service} p95 latency rose {onset.ratio:.1f}x",
        summary=f"p95 latency went from {onset.baseline:.0f} ms to {onset.level:.0f} ms "
        f"at {onset.at:%H:%M}.",
        severity=Severity.WARNING,
        confidence=onset.score,
        category="symptom",
        entities=[Entity.service(service)],
        onset=onset.at,
        service=service,
        ratio=onset.ratio,
        evidence=[Evidence(query=query, params=[service], series={"p95_ms": now.points()})],
    )
