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
