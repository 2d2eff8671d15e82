"""Time series for the helpers: times in epoch seconds and float values, built from query rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[Any]  # float64 values
Aggregation = Literal["mean", "sum", "max", "min", "median", "last", "count"]


def to_epoch(moment: Any) -> float:
    """Seconds since the epoch for a datetime (naive means UTC), numpy datetime64, ISO text or number.

    >>> to_epoch(datetime(2026, 1, 1, tzinfo=UTC))
    1767225600.0
    """
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(moment, np.datetime64):
        return float(moment.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if isinstance(moment, (int, float, np.integer, np.floating)) and not isinstance(moment, bool):
        return float(moment)
    if isinstance(moment, str):
        return to_epoch(datetime.fromisoformat(moment.replace("Z", "+00:00")))
    raise TypeError(
        f"cannot read {moment!r} ({type(moment).__name__}) as a time; give a datetime, "
        "a numpy datetime64, ISO text or epoch seconds"
    )


def to_datetime(epoch: float) -> datetime:
    """An aware UTC datetime for epoch seconds."""
    return datetime.fromtimestamp(float(epoch), tz=UTC)


def seconds(length: float | timedelta) -> float:
    """A duration in seconds, from seconds or a timedelta."""
    return length.total_seconds() if isinstance(length, timedelta) else float(length)


def _rows_of(rows: Any) -> list[Mapping[str, Any]]:
    # a QueryResult (or anything with .dicts()) or an iterable of mappings
    return list(rows.dicts()) if hasattr(rows, "dicts") else list(rows)


@dataclass(frozen=True)
class Series:
    """A time series: sorted times (epoch seconds) and float values (NaN for missing)."""

    times: FloatArray
    values: FloatArray
    name: str = ""

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if len(times) != len(values):
            raise ValueError(
                f"series {self.name!r}: {len(times)} times but {len(values)} values; "
                "give one value per time"
            )
        order = np.argsort(times, kind="stable")
        object.__setattr__(self, "times", times[order])
        object.__setattr__(self, "values", values[order])

    @classmethod
    def from_points(cls, points: Iterable[tuple[Any, Any]], name: str = "") -> Series:
        """A series from (time, value) pairs.

        >>> Series.from_points([(60, 1.0), (0, 2.0)]).values.tolist()
        [2.0, 1.0]
        """
        pairs = [(to_epoch(t), np.nan if v is None else float(v)) for t, v in points]
        return cls(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), name)

    @classmethod
    def from_rows(cls, rows: Any, time: str = "ts", value: str = "value", name: str = "") -> Series:
        """A series from query rows (a QueryResult or dicts) with a time and a value column."""
        rows = _rows_of(rows)
        if rows and (time not in rows[0] or value not in rows[0]):
            raise ValueError(
                f"Series.from_rows: rows need columns {time!r} and {value!r}; their columns "
                f"are {', '.join(map(str, rows[0]))}. Pass time= and value= to name them"
            )
        return cls.from_points(((r[time], r[value]) for r in rows), name=name or value)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def step(self) -> float:
        """The typical spacing between samples, in seconds (0 for fewer than two)."""
        gaps = np.diff(np.unique(self.times))
        return float(np.median(gaps)) if len(gaps) else 0.0

    def between(self, start: Any = None, end: Any = None) -> Series:
        """The samples in [start, end); None leaves that side open."""
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.times >= to_epoch(start)
        if end is not None:
            keep &= self.times < to_epoch(end)
        return Series(self.times[keep], self.values[keep], self.name)

    def dropna(self) -> Series:
        """The series without its missing (NaN) values."""
        keep = ~np.isnan(self.values)
        return Series(self.times[keep], self.values[keep], self.name)

    def resample(
        self, step: float | timedelta, how: Aggregation = "mean", start: Any = None, end: Any = None
    ) -> Series:
        """Values on a regular grid of `step` (bins aligned to multiples of it).

        Empty bins are NaN, or 0 for `sum` and `count`.
        """
        width = seconds(step)
        if width <= 0:
            raise ValueError(f"resample: step must be positive, got {step!r}")
        valid = self.dropna()
        first = to_epoch(start) if start is not None else (valid.times[0] if len(valid) else 0.0)
        origin = np.floor(first / width) * width
        if end is not None:
            n_bins = max(int(np.ceil((to_epoch(end) - origin) / width)), 0)
        else:
            n_bins = int((valid.times[-1] - origin) // width) + 1 if len(valid) else 0
        grid = origin + width * np.arange(n_bins)
        inside = (valid.times >= origin) & (valid.times < origin + width * n_bins)
        bins = ((valid.times[inside] - origin) // width).astype(np.int64)
        return Series(grid, _aggregate(bins, valid.values[inside], n_bins, how), self.name)

    def points(self) -> list[tuple[datetime, float]]:
        """(datetime, value) pairs, as finding evidence takes them."""
        return [(to_datetime(t), float(v)) for t, v in zip(self.times, self.values, strict=True)]

    def datetimes(self) -> list[datetime]:
        """The times as aware UTC datetimes."""
        return [to_datetime(t) for t in self.times]


def _aggregate(bins: np.ndarray[Any, Any], values: FloatArray, n_bins: int, how: str) -> FloatArray:
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    if how == "count":
        return counts
    if how == "sum":
        return np.bincount(bins, weights=values, minlength=n_bins)
    out = np.full(n_bins, np.nan)
    if how == "mean":
        sums = np.bincount(bins, weights=values, minlength=n_bins)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out
    if how == "last":
        out[bins] = values  # later samples overwrite earlier ones: the times are sorted
        return out
    if how in ("max", "min", "median"):
        for b in np.unique(bins):
            chunk = values[bins == b]
            out[b] = (
                chunk.max() if how == "max" else chunk.min() if how == "min" else np.median(chunk)
            )
        return out
    raise ValueError(
        f"resample: how must be one of mean, sum, max, min, median, last, count; got {how!r}"
    )


def align(
    first: Series, second: Series, step: float | timedelta | None = None, how: Aggregation = "mean"
) -> tuple[Series, Series]:
    """Both series on one grid over their common span, keeping only bins where both have data."""
    width = seconds(step) if step is not None else max(first.step, second.step, 1.0)
    start = max(first.times.min(initial=np.inf), second.times.min(initial=np.inf))
    end = min(first.times.max(initial=-np.inf), second.times.max(initial=-np.inf)) + width
    if not np.isfinite(start) or end <= start:
        empty = np.array([], dtype=np.float64)
        return Series(empty, empty, first.name), Series(empty, empty, second.name)
    a = first.resample(width, how, start, end)
    b = second.resample(width, how, start, end)
    keep = ~np.isnan(a.values) & ~np.isnan(b.values)
    return (
        Series(a.times[keep], a.values[keep], first.name),
        Series(b.times[keep], b.values[keep], second.name),
    )


def series_by(rows: Any, key: str, time: str = "ts", value: str = "value") -> dict[str, Series]:
    """One series per value of `key` (per pod, per service, ...) from grouped query rows."""
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for row in _rows_of(rows):
        grouped.setdefault(str(row[key]), []).append((row[time], row[value]))
    return {name: Series.from_points(points, name=name) for name, points in grouped.items()}
