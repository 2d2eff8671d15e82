"""Service-level indicators: where on the call graph a latency rise or an availability drop starts.

Each service's indicator after the onset is compared with its own history: how rarely it was
ever this bad (the share of history samples at least as bad) and by how many robust standard
deviations. Services whose anomalous callee accounts for their change are symptoms; of the
rest, the one that accounts for the most anomalous callers is the likeliest origin. The level
after the onset is the mean of the two worst samples, so one stray sample counts half. With a
history too short for tail probabilities (a short recording), the samples just before the onset
are the baseline, and the findings say so and count for less.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from statistics import median

from pydantic import BaseModel

from casebook.analyzers.dependencies import Signal, Suspect, call_graph, localize
from casebook.analyzers.periods import (
    METRIC_LEAD,
    naive,
    onset_of,
    series_onset,
    with_history,
)
from casebook.sdk import (
    Alert,
    Entity,
    Finding,
    Severity,
    Telemetry,
    analyzer,
    from_finding,
)
from casebook.sdk.models import utc

SERIES_SQL = """
with samples as (
    select service, ts, avg(value) as value from metrics where name = ? group by all
)
select service, list(ts order by ts) as times, list(value order by ts) as vals
from samples group by service order by service"""

MIN_HISTORY = 12  # samples: below this the history is too short for tail probabilities
RARE_TAIL = 0.02  # as bad as at most this share of the history...
MIN_Z = 2.0  # ...and this many robust standard deviations beyond its median
SHORT_TAIL_Z = 3.0  # with under 50 samples, worse than all of them and this many deviations
SHORT_HISTORY_RISE = 0.5  # with a short history: at least +50% of the usual value
MAX_SUSPECTS = 8
# Statistics in order of preference when several series of one indicator exist.
STATISTICS = ("average", "avg", "mean", "p50", "median", "p90", "p95", "p99")


@dataclass(frozen=True)
class Indicator:
    """An SLI family: how its metrics are named and which way is worse."""

    name: str
    pattern: str  # regular expression on metric names
    higher_is_worse: bool


LATENCY = Indicator("latency", r"latency|duration|response_time", higher_is_worse=True)
AVAILABILITY = Indicator("availability", r"availability|success_rate", higher_is_worse=False)


class IndicatorChange(BaseModel):
    """One service's indicator: usual, the level it held after the onset, how unusual that is."""

    service: str
    metric: str
    usual: float
    level: float
    rarity: float | None  # share of history at least as bad (None: history too short)
    z: float
    history: int
    began: datetime | None = None  # when the series turned bad, if before the alert


class SliSurvey(Finding):
    indicator: str
    metric: str
    suspects: list[str]
    placed: list[Suspect]
    changes: dict[str, IndicatorChange]
    graph_source: str
    short_history: bool


@analyzer(timeout_s=60, category="symptom", tags=("survey",),
          reads=["metrics:*latency*", "metrics:*duration*", "metrics:*response_time*",
                 "calls.caller", "calls.callee", "spans"])
def latency_survey(alert: Alert, telemetry: Telemetry) -> SliSurvey | None:
    """Services whose latency rose far beyond their history, placed on the call graph."""
    return _survey(alert, telemetry, LATENCY)


@analyzer(timeout_s=60, category="symptom", tags=("survey",),
          reads=["metrics:*availability*", "metrics:*success_rate*", "calls.caller",
                 "calls.callee", "spans"])
def availability_survey(alert: Alert, telemetry: Telemetry) -> SliSurvey | None:
    """Services whose availability fell far below their history, placed on the call graph."""
    return _survey(alert, telemetry, AVAILABILITY)


class IndicatorOrigin(Finding):
    service: str
    indicator: str
    metric: str
    usual: float
    level: float
    accounts_for: list[str]
    explained_by: list[str]


@analyzer(
    fan_out={"service": from_finding("latency_survey", "suspects")}, timeout_s=20, category="other"
)
def latency_origin(alert: Alert, service: str, latency_survey: SliSurvey) -> IndicatorOrigin | None:
    """The latency rise starts in this service: none of its callees slowed down as much."""
    return _origin(alert, service, latency_survey, "other")


@analyzer(
    fan_out={"service": from_finding("availability_survey", "suspects")},
    timeout_s=20,
    category="other",
)
def failure_origin(
    alert: Alert, service: str, availability_survey: SliSurvey
) -> IndicatorOrigin | None:
    """The failures start in this service: none of its callees failed as much."""
    return _origin(alert, service, availability_survey, "other")


def _survey(alert: Alert, telemetry: Telemetry, indicator: Indicator) -> SliSurvey | None:
    if not telemetry.has_table("metrics"):
        return None
    history = with_history(telemetry, alert)
    metric = indicator_metric(history, alert, indicator)
    if metric is None:
        return None
    onset = naive(onset_of(alert))
    after = onset - METRIC_LEAD
    result = history.sql(SERIES_SQL, [metric])
    changes = {}
    for service, times, values in result:
        # The history ends where this series turned bad, which may be before the alert.
        began = series_onset(times, values, onset, indicator.higher_is_worse) or after
        split = min(began, after)
        before = [v for t, v in zip(times, values, strict=True) if t < split]
        later = [v for t, v in zip(times, values, strict=True) if t >= split]
        change = _change(service, metric, before, later, indicator)
        if change is not None and began < after:
            change = change.model_copy(update={"began": began})
        if change is not None:
            changes[service] = change
    if not changes:
        return None
    short = all(c.rarity is None for c in changes.values())
    signals = {s: Signal(_strength(c), abs(c.level - c.usual)) for s, c in changes.items()}
    graph = call_graph(history)
    placed = localize(signals, graph, weigh_reach=True)[:MAX_SUSPECTS]
    top = placed[0]
    worse = "rose" if indicator.higher_is_worse else "fell"
    return SliSurvey(
        title=f"{indicator.name.title()} {worse} in {len(changes)} service"
        f"{'s' if len(changes) > 1 else ''}",
        summary=f"{metric} {worse} beyond its history after {onset:%H:%M} UTC in "
        f"{', '.join(s.service for s in placed)}; the likeliest origin is "
        f"{top.service}.",
        severity=Severity.INFO,
        confidence=0.3,
        category="symptom",
        entities=[Entity.service(alert.service or top.service)],
        evidence=[
            result.evidence(
                limit=0,
                note=f"{metric} per service: history before {after:%H:%M} UTC and samples after",
            )
        ],
        onset=onset_of(alert),
        indicator=indicator.name,
        metric=metric,
        suspects=[s.service for s in placed],
        placed=placed,
        changes={s.service: changes[s.service] for s in placed},
        graph_source=graph.source,
        short_history=short,
    )


def indicator_metric(telemetry: Telemetry, alert: Alert, indicator: Indicator) -> str | None:
    """The indicator's metric: the alert's own series if it is one, else the best covered."""
    named = alert.annotations.get("series") or alert.labels.get("series")
    pattern = re.compile(indicator.pattern, re.IGNORECASE)
    names = {name: sum(s is not None for s in services)
             for name, services in telemetry.metric_services().items() if pattern.search(name)}
    if named in names:
        return named
    if not names:
        return None
    return min(names, key=lambda n: (-names[n], "client" in n.lower(), _statistic_rank(n), n))


def _statistic_rank(name: str) -> int:
    parts = re.split(r"[_.\-]", name.lower())
    return next((i for i, s in enumerate(STATISTICS) if s in parts), len(STATISTICS))


def _change(
    service: str, metric: str, before: list[float], after: list[float], indicator: Indicator
) -> IndicatorChange | None:
    """The service's change as badness (higher is worse), or None if it is not anomalous."""
    if not before or not after:
        return None
    top = 100.0 if max(before + after) > 1.0 else 1.0
    bad = (lambda v: v) if indicator.higher_is_worse else (lambda v: top - v)
    past = sorted(bad(v) for v in before)
    level = _sustained(sorted((bad(v) for v in after), reverse=True))
    usual = median(past)
    delta = level - usual
    if delta <= 0:
        return None
    # Availability is a share: a drop under half a percent (of 100) is within counting noise.
    floor = (0.005 * top) if not indicator.higher_is_worse else 1e-9
    if len(past) >= MIN_HISTORY:
        spread = 1.4826 * median(abs(v - usual) for v in past)
        tail = (past[min(len(past) - 1, int(0.99 * len(past)))] - usual) / 2.33
        scale = max(spread, tail, 0.05 * abs(usual), floor)
        rarity = (sum(1 for v in past if v >= level) + 1) / (len(past) + 1)
        z = delta / scale
        # Worse than every sample of a short history is as rare as that history can tell;
        # it must then stand further out.
        floor_rarity = 1 / (len(past) + 1)
        short_tail = floor_rarity > RARE_TAIL
        if rarity > max(RARE_TAIL, floor_rarity) or z < (SHORT_TAIL_Z if short_tail else MIN_Z):
            return None
    else:
        rarity = None
        z = delta / max(0.25 * abs(usual), floor)
        if delta < SHORT_HISTORY_RISE * abs(usual) or z < MIN_Z:
            return None
    shown = (lambda v: v) if indicator.higher_is_worse else (lambda v: top - v)
    return IndicatorChange(
        service=service,
        metric=metric,
        usual=round(shown(usual), 6),
        level=round(shown(level), 6),
        rarity=None if rarity is None else round(rarity, 5),
        z=round(z, 3),
        history=len(past),
    )


def _sustained(badness: list[float]) -> float:
    """The level the indicator held after the onset: the mean of its two worst samples, so
    one stray sample of a noisy series counts half."""
    worst = badness[:2]
    return sum(worst) / len(worst)


def _strength(change: IndicatorChange) -> float:
    """How unusual: rarity in the history (in decimal orders) times the root of the z-score."""
    rarity = -math.log10(change.rarity) if change.rarity is not None else 1.0
    return rarity * math.sqrt(min(change.z, 50.0))


def _origin(alert: Alert, service: str, survey: SliSurvey, category: str) -> IndicatorOrigin | None:
    suspect = next((s for s in survey.placed if s.service == service), None)
    change = survey.changes.get(service)
    if suspect is None or change is None:
        return None
    worse = "rose" if change.level > change.usual else "fell"
    weight = suspect.score / (suspect.score + 20)
    if suspect.is_origin:
        severity, confidence = Severity.WARNING, 0.4 + 0.45 * weight
        why = (
            "none of its callees changed as much"
            if suspect.confirmed
            else "it calls nothing that is measured"
        )
        if suspect.accounts_for:
            why += f"; it accounts for {', '.join(suspect.accounts_for)}"
    else:
        severity, confidence = Severity.INFO, 0.2 + 0.2 * weight
        why = f"but its callee {', '.join(suspect.explained_by)} changed as much or more"
    if survey.short_history:
        confidence *= 0.8
        why += " (history too short for a tail test: compared with the samples just before)"
    if not _alert_concerns(alert, survey.indicator):
        confidence *= 0.7
    rarity = f", as bad as {change.rarity:.1%} of its history" if change.rarity is not None else ""
    evidence = survey.evidence[0].model_copy() if survey.evidence else None
    if evidence is not None:
        evidence.rows = [
            [
                service,
                change.metric,
                change.usual,
                change.level,
                change.rarity,
                change.z,
                change.history,
            ]
        ]
        evidence.columns = [
            "service",
            "metric",
            "usual",
            "level after onset",
            "share of history as bad",
            "z",
            "history samples",
        ]
    return IndicatorOrigin(
        title=f"{survey.indicator.title()} change starts in {service}",
        summary=f"{change.metric} of {service} {worse} from a usual {change.usual:.4g} to "
        f"{change.level:.4g}{rarity}; {why}.",
        severity=severity,
        confidence=round(confidence, 4),
        category=category,
        entities=[Entity.service(service)],
        evidence=[evidence] if evidence else [],
        onset=_began(survey, service),
        service=service,
        indicator=survey.indicator,
        metric=change.metric,
        usual=change.usual,
        level=change.level,
        accounts_for=suspect.accounts_for,
        explained_by=suspect.explained_by,
    )


def _alert_concerns(alert: Alert, indicator: str) -> bool:
    """Whether the alert is about this indicator (by name, labels or annotations)."""
    words = " ".join([alert.name, *alert.labels.values(), *alert.annotations.values()])
    return indicator.lower() in words.lower()


def _began(survey: SliSurvey, service: str) -> datetime | None:
    """When the service's indicator turned bad: its own series' onset, else the survey's."""
    change = survey.changes.get(service)
    return utc(change.began) if change is not None and change.began else survey.onset
