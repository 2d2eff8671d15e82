"""Per-minute series as the built-in analyzers read them, with onset detection on top."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casebook.sdk import QueryResult, Telemetry

SERIES_SQL = """
select time_bucket(interval '1 minute', ts) as minute, {agg}(value) as value
from metrics where name = ? and service = ?
group by minute order by minute"""


@dataclass(frozen=True)
class Shift:
    """A sustained move of a series away from its baseline."""

    onset: datetime
    baseline: float
    level: float  # median after the onset

    @property
    def ratio(self) -> float:
        return self.level / self.baseline if self.baseline else float("inf")


def metric_series(telemetry: Telemetry, name: str, service: str,
                  agg: str = "avg") -> tuple[QueryResult, QueryResult]:
    """(window, baseline) per-minute series of one metric of one service."""
    query = SERIES_SQL.format(agg=agg)
    return (telemetry.sql(query, [name, service]),
            telemetry.baseline().sql(query, [name, service]))


def find_shift(window: QueryResult, baseline: QueryResult, *, up: bool = True,
               min_ratio: float = 1.5, sustain: int = 3) -> Shift | None:
    """The first sustained move past `min_ratio` of the baseline median (and 4 robust sigmas).

    For a drop, pass up=False and min_ratio below 1 (0.5 = halved).
    """
    times = window.column("minute")
    values = [float(v) for v in window.column("value")]
    history = [float(v) for v in baseline.column("value")]
    if len(history) < 5:  # no baseline period: use the first third of the window
        cut = len(values) // 3
        history, times, values = values[:cut], times[cut:], values[cut:]
    if len(history) < 5 or len(values) < sustain:
        return None
    median = _median(history)
    spread = 1.4826 * _median([abs(v - median) for v in history])
    if up:
        threshold = median + max(4 * spread, (min_ratio - 1) * abs(median))
        beyond = [v > threshold for v in values]
    else:
        threshold = median - max(4 * spread, (1 - min_ratio) * abs(median))
        beyond = [v < threshold for v in values]
    for i in range(len(values) - sustain + 1):
        ahead = beyond[i:i + sustain + 1]
        if beyond[i] and sum(ahead) >= sustain:
            return Shift(onset=times[i], baseline=median, level=_median(values[i:]))
    return None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# A counter may be cumulative or per interval (docs/telemetry.md). Each label set of each
# service is one series; a series whose value rises at nearly every change is cumulative, and
# its rate is the rise between samples (a fall is a restart from zero: the new value counts).
RATE_SQL = """
with samples as (
    select service, ts, value,
           lag(value) over (partition by service, labels order by ts) as prev
    from metrics where name = ? and service in ({services})
), styles as (
    select service,
           count(*) filter (where value > prev) >= 0.9 * count(*) filter (where value <> prev)
           and count(*) filter (where value <> prev) >= 3 as cumulative
    from samples group by service
)
select s.service, time_bucket(interval '1 minute', s.ts) as minute,
       sum(case when not st.cumulative then s.value
                when s.prev is null then null
                when s.value >= s.prev then s.value - s.prev
                else s.value end) as value
from samples s join styles st using (service)
group by all having value is not null order by s.service, minute"""


def counter_rates(telemetry: Telemetry, name: str, services: list[str]) -> QueryResult:
    """Per-minute rates of a counter for each service (columns service, minute, value)."""
    marks = ", ".join("?" for _ in services)
    return telemetry.sql(RATE_SQL.format(services=marks), [name, *services])


def rate_series(telemetry: Telemetry, name: str, service: str) -> tuple[QueryResult, QueryResult]:
    """(window, baseline) per-minute rates of one counter of one service, either style."""
    def one(handle: Telemetry) -> QueryResult:
        result = counter_rates(handle, name, [service])
        return QueryResult(result.query, result.params, ["minute", "value"],
                           [(m, v) for _, m, v in result.rows])
    return one(telemetry), one(telemetry.baseline())
