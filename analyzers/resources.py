"""Resources: a service's pods ran short of CPU or memory (contention, a hog, a leak).

Read from the per-pod (or per-service) utilization metrics: a metric whose name says CPU or
memory, preferring one that is a share of a limit (`..._percent`, `..._ratio`,
`..._utilization`) because then "nearly full" means something. Node-level metrics are left out:
they describe the machine, not the service.

The history before the onset often holds an earlier episode of the same trouble on the same
pod (faults come back; a hog runs again). Its samples stand far outside the rest, so the usual
high is taken from the samples within the usual range, as long as the episode is a minority of
the history; the level after the onset is the one the pod held (its second highest sample), so
one stray spike counts for nothing. A history of only two to four samples is compared at its
maximum, a higher bar. A shortage that began before the alert and was over by its last two
samples (back to the usual range while the incident went on) is an earlier episode, not what
is wrong now: it counts for less.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from casebook.analyzers.periods import METRIC_LEAD, naive, onset_of, series_onset
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
from casebook.sdk.telemetry import service_order

SHARE = re.compile(r"(percent|ratio|utili[sz]ation|usage_rate)", re.IGNORECASE)
MACHINE = re.compile(r"^(node|host|machine)_", re.IGNORECASE)

PODS_SQL = """
select service, coalesce(labels['pod'], labels['instance'], service) as pod, name,
       list(ts order by ts) as times, list(value order by ts) as vals
from metrics where name in ({names})
group by all"""

MIN_SAMPLES = 5
MIN_SHORT_SAMPLES = 2  # with fewer than MIN_SAMPLES: compared with the highest of them
EPISODE_SHARE = 0.25  # outlying history samples up to this share are an earlier episode
SHORT_HISTORY_FACTOR = 0.8
ENDED_FACTOR = 0.5  # a shortage over by the end of the window
BACK = 0.2  # "back to usual": within this share of the way from the usual high to the peak
MIN_RATIO = 3.0  # the peak must be this many times the usual high (90th percentile)...
PINNED = 0.97  # ...unless it is pinned at its limit (a share of it this full)...
MIN_PINNED_RATIO = 2.0  # ...from a usual high at most half of that


def resource_metrics(telemetry: Telemetry, kind: str) -> list[str]:
    """The utilization metrics of one kind (`cpu`, `memory`), shares of a limit first."""
    if not telemetry.has_table("metrics"):
        return []
    pattern = re.compile(r"cpu" if kind == "cpu" else r"mem", re.IGNORECASE)
    names = sorted(telemetry.metric_services())
    found = [n for n in names if pattern.search(n) and not MACHINE.search(n)]
    shares = [n for n in found if SHARE.search(n)]
    return shares or found


def cpu_services(telemetry: Telemetry) -> list[str]:
    """Services that report a CPU utilization metric."""
    return _services(telemetry, "cpu")


def memory_services(telemetry: Telemetry) -> list[str]:
    """Services that report a memory utilization metric."""
    return _services(telemetry, "memory")


def _services(telemetry: Telemetry, kind: str) -> list[str]:
    names = resource_metrics(telemetry, kind)
    if not names:
        return []
    catalog = telemetry.metric_services()
    return sorted({s for n in names for s in catalog.get(n, [])}, key=service_order)


class ResourceShortage(Finding):
    service: str
    pod: str
    metric: str
    usual: float
    peak: float
    ratio: float


@analyzer(fan_out={"service": cpu_services}, timeout_s=20, category="resource",
          reads=["metrics:*cpu*_ratio", "labels:pod", "labels:instance"])
def cpu_contention(alert: Alert, telemetry: Telemetry, service: str) -> ResourceShortage | None:
    """A pod of the service used far more CPU than usual after the onset, up to its limit."""
    return _shortage(alert, telemetry, service, "cpu")


@analyzer(fan_out={"service": memory_services}, timeout_s=20, category="resource",
          reads=["metrics:*memory*_ratio", "labels:pod", "labels:instance"])
def memory_pressure(alert: Alert, telemetry: Telemetry, service: str) -> ResourceShortage | None:
    """A pod of the service filled its memory after the onset (a leak or a hog)."""
    return _shortage(alert, telemetry, service, "memory")


def _shortage(
    alert: Alert, telemetry: Telemetry, service: str, kind: str
) -> ResourceShortage | None:
    names = resource_metrics(telemetry, kind)
    if not names:
        return None
    alert_at = naive(onset_of(alert))
    query = PODS_SQL.format(names=", ".join("?" for _ in names))
    result = telemetry.shared(query, names)
    mine = [r for r in result.rows if r[0] == service]
    rows = [_periods(r, alert_at) for r in mine]
    judged = [j for j in (_judge(r) for r in rows) if j is not None]
    if not judged:
        return None
    _, row = max(judged, key=lambda j: j[0])
    share = SHARE.search(row["name"]) is not None
    full = _fullness(row["peak"], row["name"]) if share else None
    ratio = row["peak"] / max(row["usual_high"], 1e-9)
    confidence = 0.5 + 0.45 * (full if full is not None else min(ratio / 20, 1.0))
    if row["samples_before"] < MIN_SAMPLES:
        confidence *= SHORT_HISTORY_FACTOR
    if row["ended"]:
        confidence *= ENDED_FACTOR
    severity = Severity.CRITICAL if confidence >= 0.85 else Severity.WARNING
    level = f"{row['peak']:.4g}" + (f" ({full:.0%} of its limit)" if full is not None else "")
    over = f"; it was back to {row['last']:.4g} by {row['last_at']:%H:%M}" if row["ended"] else ""
    what = "CPU" if kind == "cpu" else "memory"
    shown = [[r["service"], r["pod"], r["name"], r["usual"], r["usual_high"], r["peak"],
              r["peak_at"], r["began"]] for r in rows]
    evidence = QueryResult(result.query, result.params, ["service", "pod", "name", "usual",
                                                         "usual_high", "peak", "peak_at",
                                                         "began"], shown).evidence(
        note=f"{what} of {service}'s pods before and after the onset"
    )
    return ResourceShortage(
        title=f"{service} short of {what} ({row['pod']})",
        summary=f"{row['name']} of {row['pod']} rose from a usual {row['usual']:.4g} to "
        f"{level} after {row['began']:%H:%M} UTC, {ratio:.0f}x its usual high{over}.",
        severity=severity,
        confidence=round(confidence, 4),
        category="resource",
        entities=[Entity.service(service), Entity(kind="pod", name=row["pod"])],
        evidence=[evidence],
        onset=row["peak_at"],
        mitigations=[
            Mitigation(
                action=f"Find what else runs on {row['pod']}'s node or in the pod and uses "
                f"{what}; move or limit it, or give {service} more",
                detail="contention from a neighbour, a runaway thread or too small a limit",
                risk="low",
            )
        ],
        service=service,
        pod=row["pod"],
        metric=row["name"],
        usual=round(row["usual"], 6),
        peak=round(row["peak"], 6),
        ratio=round(ratio, 3),
    )


def _periods(row: tuple[Any, ...], alert_at: datetime) -> dict[str, Any]:
    """One pod's series split at its own onset: the usual range before, the peak after."""
    service, pod, name, times, values = row
    found = series_onset(times, values, alert_at)
    began = found if found is not None and found < alert_at - METRIC_LEAD else alert_at - METRIC_LEAD
    before = sorted(v for t, v in zip(times, values, strict=True) if t < began)
    if len(before) < MIN_SAMPLES:
        # A short history (seconds-apart samples): the lead would leave no usual range, so
        # the series' own onset (or the alert) splits it.
        began = found if found is not None and found > began else alert_at
        before = sorted(v for t, v in zip(times, values, strict=True) if t < began)
    after = [(v, t) for t, v in zip(times, values, strict=True) if t >= began]
    peak, peak_at = max(after, default=(None, None), key=lambda p: p[0] if p[0] is not None
                        else float("-inf"))
    held = sorted((v for v, _ in after if v is not None), reverse=True)
    short = len(before) < MIN_SAMPLES
    usual_high = before[-1] if short and before else _usual_high(before)
    since = [(t, v) for t, v in zip(times, values, strict=True) if t >= alert_at]
    ended = (
        peak_at is not None and peak_at < alert_at and len(since) >= 2
        and all(v <= usual_high + BACK * (peak - usual_high) for _, v in since[-2:])
    )
    return {
        "service": service, "pod": pod, "name": name, "split": began,
        "began": found if found is not None else alert_at,
        "usual": _quantile(before, 0.5),
        "usual_high": usual_high,
        "samples_before": len(before), "peak": peak, "peak_at": peak_at,
        "held": held[1] if len(held) >= 2 else peak,
        "ended": ended, "last": since[-1][1] if since else None,
        "last_at": since[-1][0] if since else None,
    }


def _usual_high(ordered: list[float]) -> float:
    """The 90th percentile of the history without an earlier episode: samples far outside the
    usual range (as `series_onset` judges it) are left out when they are a minority."""
    if not ordered:
        return 0.0
    middle = _quantile(ordered, 0.5)
    spread = 1.4826 * _quantile(sorted(abs(v - middle) for v in ordered), 0.5)
    margin = max(4 * spread, 0.2 * abs(middle), 1e-9)
    usual = [v for v in ordered if abs(v - middle) <= margin]
    if len(ordered) - len(usual) > EPISODE_SHARE * len(ordered):
        return _quantile(ordered, 0.9)
    return _quantile(usual, 0.9)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values (0.0 for none), as DuckDB's quantile_cont."""
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _judge(row: dict[str, Any]) -> tuple[float, dict[str, Any]] | None:
    """(strength, row) when the level the pod held after the onset is far above its usual
    range, else None."""
    if (row["samples_before"] or 0) < MIN_SHORT_SAMPLES or row["peak"] is None:
        return None
    high = max(row["usual_high"] or 0.0, 1e-9)
    ratio = row["held"] / high
    full = _fullness(row["held"], row["name"]) if SHARE.search(row["name"]) else None
    pinned = full is not None and full >= PINNED and ratio >= MIN_PINNED_RATIO
    if ratio < MIN_RATIO and not pinned:
        return None
    if full is not None and full < 0.5:
        return None  # a share of a limit that stayed under half is busy, not short
    return (full if full is not None else 0.5) * ratio, row


def _fullness(value: float, name: str) -> float:
    """How full a share-of-limit value is, 0 to 1 (percent metrics are out of 100)."""
    scale = 100.0 if re.search(r"percent", name, re.IGNORECASE) else 1.0
    return max(0.0, min(value / scale, 1.0))
