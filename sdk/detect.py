"""Anomaly and onset detection on one series, and before/after comparison.

Points are scored with a robust z-score (median and MAD of a baseline, optionally against the
same phase of previous periods), and CUSUM on those scores locates where a sustained shift
began. Nothing here assumes normal data: medians, MADs and ranks only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from casebook.sdk.series import FloatArray, Series, seconds, to_datetime

# CUSUM allowance and decision level, in robust standard deviations: a 4-sigma shift is caught
# in four points, while heavy-tailed noise (Student t3) raises a false alarm in about 1% of
# 60-point windows. Very skewed series (latency) are best passed as logarithms.
CUSUM_ALLOWANCE = 1.0
CUSUM_LEVEL = 10.0
# Same-phase values looked up in previous periods, at most.
SEASONS_BACK = 4
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Onset:
    """Where a sustained shift began, which way it went and how large it is."""

    at: datetime
    direction: Literal["up", "down"]
    baseline: float  # typical value before (median of the baseline)
    level: float  # typical value during the shift (median)
    ratio: float  # level / baseline (inf when the baseline is 0)
    z: float  # median robust z-score during the shift
    score: float  # |z| / (|z| + threshold): 0.5 at the threshold, towards 1 beyond
    points: int  # samples in the shift
    ended: datetime | None  # when the values came back, None if still shifted at the end


def robust_center_scale(values: Sequence[float] | FloatArray) -> tuple[float, float]:
    """Median and a robust standard deviation (MAD-based, with fallbacks for flat data).

    >>> robust_center_scale([1, 2, 3, 4, 100])
    (3.0, 1.4826)
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        return 0.0, 1.0
    center = float(np.median(data))
    deviations = np.abs(data - center)
    scale = MAD_TO_SIGMA * float(np.median(deviations))
    if scale <= 0:  # more than half the values equal: fall back to the mean deviation
        scale = 1.2533 * float(deviations.mean())
    if scale <= 0:
        scale = 1e-6 * max(1.0, abs(center))
    return center, scale


def anomaly_scores(
    series: Series, baseline: Series | None = None, *, period: float | timedelta | None = None
) -> Series:
    """Robust z-score of every point against the baseline (the series itself when None).

    With `period` (e.g. a day), each point is compared with the same phase of up to four
    previous periods, found in the baseline and the series; points without such history fall
    back to the plain baseline median.
    """
    series = series.dropna()
    reference = (baseline if baseline is not None else series).dropna()
    center, _ = robust_center_scale(reference.values)
    deviations = reference.values - center
    expected = np.full(len(series), center)
    if period is not None:
        history = _join(reference, series)
        seasonal = _same_phase(history, series.times, seconds(period))
        if (~np.isnan(seasonal)).any():
            own = reference.values - _same_phase(history, reference.times, seconds(period))
            if (~np.isnan(own)).sum() >= 5:
                deviations = own[~np.isnan(own)]
            expected = np.where(np.isnan(seasonal), center, seasonal)
    up, down = _side_scales(deviations)
    residuals = series.values - expected
    return Series(series.times, residuals / np.where(residuals > 0, up, down), series.name)


def _side_scales(deviations: FloatArray) -> tuple[float, float]:
    """Robust spreads above and below the center, so skewed data (latency) is not judged by
    its narrow side."""
    _, overall = robust_center_scale(deviations)
    center = float(np.median(deviations)) if len(deviations) else 0.0
    sides = []
    for side in (deviations[deviations > center], deviations[deviations < center]):
        spread = MAD_TO_SIGMA * float(np.median(np.abs(side - center))) if len(side) >= 3 else 0.0
        # a side's spread is never taken below half the overall one (few points, ties)
        sides.append(max(spread, overall / 2))
    return sides[0], sides[1]


def detect_onset(
    series: Series,
    baseline: Series | None = None,
    *,
    period: float | timedelta | None = None,
    threshold: float = 3.0,
    min_points: int = 2,
) -> Onset | None:
    """Find where a sustained shift in the series began, or None if there is none.

    Without a baseline the first third of the series (at least five points) serves as one.
    A shift must last `min_points` samples with a median robust z of at least `threshold`.

    >>> flat = Series.from_points([(60 * i, 10.0 + (i % 3)) for i in range(30)])
    >>> detect_onset(flat) is None
    True
    """
    series = series.dropna()
    if baseline is None:
        cut = max(5, len(series) // 3)
        if cut >= len(series):
            return None
        split = series.times[cut]
        baseline, series = series.between(end=split), series.between(start=split)
    if len(series) == 0 or len(baseline.dropna()) == 0:
        return None
    scores = anomaly_scores(series, baseline, period=period).values
    best: tuple[float, int, int, int] | None = None  # peak, sign, start, end
    for sign in (1, -1):
        for peak, run_start, run_end in _cusum_runs(sign * scores):
            start, end = _shifted_part(sign * scores, run_start, run_end, threshold)
            shifted = sign * scores[start : end + 1]
            if (
                end + 1 - start < min_points
                or float(np.median(shifted)) < threshold
                or float((shifted - CUSUM_ALLOWANCE).sum()) < CUSUM_LEVEL
            ):
                continue
            if best is None or peak > best[0]:
                best = (peak, sign, start, end)
    if best is None:
        return None
    _, sign, start, end = best
    start = _change_point(sign * scores, start, end)
    center, _ = robust_center_scale(baseline.values)
    level = float(np.median(series.values[start : end + 1]))
    z = float(np.median(scores[start : end + 1]))
    return Onset(
        at=to_datetime(series.times[start]),
        direction="up" if sign > 0 else "down",
        baseline=center,
        level=level,
        ratio=level / center if center else math.inf,
        z=z,
        score=abs(z) / (abs(z) + threshold),
        points=end + 1 - start,
        ended=to_datetime(series.times[end + 1]) if end + 1 < len(series) else None,
    )


def _cusum_runs(scores: FloatArray) -> list[tuple[float, int, int]]:
    """Upward CUSUM runs that raised an alarm: (peak, first point, last point)."""
    runs = []
    total, start, peak, alarmed = 0.0, 0, 0.0, False
    for i, z in enumerate(scores):
        if total == 0.0:
            start = i
        total = max(0.0, total + z - CUSUM_ALLOWANCE)
        peak = max(peak, total)
        alarmed = alarmed or total >= CUSUM_LEVEL
        if total == 0.0:
            if alarmed:
                runs.append((peak, start, i - 1))
            peak, alarmed = 0.0, False
    if alarmed:
        runs.append((peak, start, len(scores) - 1))
    return runs


def _shifted_part(scores: FloatArray, start: int, end: int, threshold: float) -> tuple[int, int]:
    """The stretch of a CUSUM run that is actually shifted (the run outlasts a short shift).

    It is the stretch with the largest sum of (score - allowance), a maximum subarray, found
    twice: with half the threshold as allowance, then with half the shift's size, so a huge
    short shift is not stretched over the mildly raised values that follow it.
    """
    allowance = max(CUSUM_ALLOWANCE, threshold / 2)
    start, end = _max_subarray(scores, start, end, allowance)
    stretch = np.sort(scores[start : end + 1])
    size = float(np.median(stretch[len(stretch) // 2 :]))
    return _max_subarray(scores, start, end, max(allowance, size / 2))


def _max_subarray(scores: FloatArray, start: int, end: int, allowance: float) -> tuple[int, int]:
    best, best_range, total, begin = -np.inf, (start, end), 0.0, start
    for i in range(start, end + 1):
        if total <= 0:
            total, begin = 0.0, i
        total += float(scores[i]) - allowance
        if total > best:
            best, best_range = total, (begin, i)
    return best_range


def _change_point(scores: FloatArray, start: int, end: int) -> int:
    """The most likely start of a shift within a CUSUM run (the run can begin on noise).

    With the shift's size estimated as the run's median, the likelihood of a start at t grows
    with the sum of (score - size / 2) from t to the end of the run.
    """
    size = float(np.median(scores[start : end + 1]))
    gains = np.cumsum((scores[start : end + 1] - size / 2)[::-1])[::-1]
    return start + int(np.argmax(gains))


def _join(first: Series, second: Series) -> Series:
    return Series(
        np.concatenate([first.times, second.times]), np.concatenate([first.values, second.values])
    )


def _same_phase(history: Series, times: FloatArray, period: float) -> FloatArray:
    """Median of the history's values at the same phase of up to SEASONS_BACK earlier periods."""
    tolerance = max(history.step / 2, 1e-9)
    found = np.full((SEASONS_BACK, len(times)), np.nan)
    for k in range(1, SEASONS_BACK + 1):
        target = times - k * period
        index = np.clip(np.searchsorted(history.times, target), 1, max(len(history) - 1, 1))
        left, right = index - 1, np.minimum(index, len(history) - 1)
        nearest = np.where(
            np.abs(history.times[left] - target) <= np.abs(history.times[right] - target),
            left,
            right,
        )
        close = np.abs(history.times[nearest] - target) <= tolerance
        found[k - 1] = np.where(close, history.values[nearest], np.nan)
    with np.errstate(all="ignore"):
        counts = (~np.isnan(found)).sum(axis=0)
        medians = np.nanmedian(np.where(counts > 0, found, 0.0), axis=0)
    return np.where(counts > 0, medians, np.nan)


@dataclass(frozen=True)
class Comparison:
    """Before/after change of a measure, with a robust effect size and a rank test."""

    before: float  # median before
    after: float  # median after
    change: float  # after - before
    relative_change: float  # change / |before| (inf when before is 0 and something changed)
    effect_size: float  # change in robust standard deviations of the two samples
    probability: float  # chance that an after value exceeds a before value (0.5 = no change)
    p_value: float  # two-sided Mann-Whitney U test (normal approximation, ties corrected)
    direction: Literal["up", "down", "flat"]
    significant: bool  # p_value < alpha and |effect_size| >= min_effect


def compare(
    before: Series | Sequence[float] | FloatArray,
    after: Series | Sequence[float] | FloatArray,
    *,
    alpha: float = 0.01,
    min_effect: float = 0.5,
) -> Comparison:
    """Compare two samples (before and after a change) with medians, MADs and ranks.

    >>> result = compare([10, 11, 9, 10, 10, 11], [20, 20, 19, 21, 20, 21])
    >>> result.direction, result.significant, result.relative_change
    ('up', True, 1.0)
    """
    a, b = _values(before, "before"), _values(after, "after")
    center_a, scale_a = robust_center_scale(a)
    center_b, scale_b = robust_center_scale(b)
    change = center_b - center_a
    pooled = math.sqrt((scale_a**2 + scale_b**2) / 2)
    effect = change / pooled if pooled > 0 else 0.0
    u, p_value = mann_whitney(a, b)
    significant = p_value < alpha and abs(effect) >= min_effect
    direction: Literal["up", "down", "flat"] = "flat"
    if significant or (p_value < alpha and change != 0):
        direction = "up" if change > 0 else "down"
    if center_a:
        relative = change / abs(center_a)
    else:
        relative = 0.0 if change == 0 else math.copysign(math.inf, change)
    return Comparison(
        before=center_a,
        after=center_b,
        change=change,
        relative_change=relative,
        effect_size=effect,
        probability=u / (len(a) * len(b)),
        p_value=p_value,
        direction=direction,
        significant=significant,
    )


def mann_whitney(
    before: Sequence[float] | FloatArray, after: Sequence[float] | FloatArray
) -> tuple[float, float]:
    """U statistic of `after` over `before` and its two-sided p-value (normal approximation).

    >>> u, p = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    >>> u, round(p, 4)
    (25.0, 0.0122)
    """
    a, b = _values(before, "before"), _values(after, "after")
    n_a, n_b = len(a), len(b)
    ranks = _ranks(np.concatenate([a, b]))
    u = float(ranks[n_a:].sum() - n_b * (n_b + 1) / 2)
    n = n_a + n_b
    _, tie_counts = np.unique(np.concatenate([a, b]), return_counts=True)
    tie_term = float((tie_counts**3 - tie_counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    variance = n_a * n_b / 12 * ((n + 1) - tie_term)
    if variance <= 0:
        return u, 1.0
    z = (abs(u - n_a * n_b / 2) - 0.5) / math.sqrt(variance)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _ranks(values: FloatArray) -> FloatArray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def _values(sample: Any, label: str) -> FloatArray:
    data = sample.values if isinstance(sample, Series) else sample
    array = np.asarray(data, dtype=np.float64).reshape(-1)
    array = array[~np.isnan(array)]
    if len(array) == 0:
        raise ValueError(f"compare: the {label} sample is empty; query a period with data")
    return array
