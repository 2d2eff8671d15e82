"""Lead/lag between two series: does a suspected cause move before the symptom does?"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from casebook.sdk.detect import detect_onset
from casebook.sdk.series import FloatArray, Series, align, seconds

# Robust z beyond which a change is clipped, so that one spike cannot decide the correlation.
CLIP_Z = 20.0
# The best correlation needs this many standard errors to count (a margin for having searched
# every lag); the standard error accounts for both series' autocorrelation (Bartlett).
SIGNIFICANCE_Z = 3.0


@dataclass(frozen=True)
class LeadLag:
    """How two series' changes line up in time."""

    leader: Literal["cause", "symptom", "together", "unrelated"]
    lag: timedelta  # positive: the cause's changes come this much before the symptom's
    lag_steps: int
    correlation: float  # of the changes at the best lag (negative: they move oppositely)
    same_time_correlation: float  # of the changes at lag 0
    step: timedelta  # the grid both series were put on
    points: int  # aligned points compared
    cause_onset: datetime | None  # where a sustained shift began in each, if one did
    symptom_onset: datetime | None
    decided_by: Literal["onsets", "correlation"]


def lead_lag(
    cause: Series,
    symptom: Series,
    max_lag: int | float | timedelta = 10,
    *,
    step: float | timedelta | None = None,
    span: int = 3,
) -> LeadLag:
    """Say which of two series moved first: by their onsets if both shifted, else by correlation.

    When both series show a sustained shift (`detect_onset`), the earlier onset leads (within
    one step they move together). Otherwise the changes are cross-correlated over lags up to
    `max_lag`.

    `max_lag` is a number of steps (int) or a duration (seconds as float, or a timedelta).
    Both series are put on one grid (the coarser of their steps unless `step` is given), and
    the correlation is taken on changes over `span` steps, robustly scaled and clipped, so a
    level shift counts at the moment it happens and a shared trend alone does not correlate.
    """
    a, b = align(cause, symptom, step)
    width = seconds(step) if step is not None else (a.step or max(cause.step, symptom.step, 1.0))
    lags = _lag_steps(max_lag, width)
    changes_a, changes_b = _changes(a.values, span), _changes(b.values, span)
    n = len(changes_a)
    if n < 4:
        raise ValueError(
            f"lead_lag: only {len(a)} aligned points between {cause.name or 'cause'} and "
            f"{symptom.name or 'symptom'}; widen the window or pass a coarser step="
        )
    best_lag, best = 0, 0.0
    correlations = {}
    for lag in range(-lags, lags + 1):
        value = _shifted_correlation(changes_a, changes_b, lag)
        correlations[lag] = value
        # prefer the smaller lag on (near) ties: a coincidence is the simpler explanation
        if abs(value) > abs(best) + 1e-9 or (
            abs(abs(value) - abs(best)) <= 1e-9 and abs(lag) < abs(best_lag)
        ):
            best_lag, best = lag, value
    threshold = SIGNIFICANCE_Z * _standard_error(changes_a, changes_b, lags + span)
    leader: Literal["cause", "symptom", "together", "unrelated"]
    if abs(best) < threshold:
        leader = "unrelated"
    elif best_lag == 0:
        leader = "together"
    else:
        leader = "cause" if best_lag > 0 else "symptom"
    result = LeadLag(
        leader=leader,
        lag=timedelta(seconds=best_lag * width),
        lag_steps=best_lag,
        correlation=best,
        same_time_correlation=correlations[0],
        step=timedelta(seconds=width),
        points=len(a),
        cause_onset=None,
        symptom_onset=None,
        decided_by="correlation",
    )
    return _by_onsets(result, a, b, width)


def _by_onsets(result: LeadLag, cause: Series, symptom: Series, width: float) -> LeadLag:
    cause_onset, symptom_onset = detect_onset(cause), detect_onset(symptom)
    if cause_onset is None or symptom_onset is None:
        return replace(
            result,
            cause_onset=cause_onset.at if cause_onset else None,
            symptom_onset=symptom_onset.at if symptom_onset else None,
        )
    gap = (symptom_onset.at - cause_onset.at).total_seconds()
    steps = int(round(gap / width))
    leader: Literal["cause", "symptom", "together"] = "together"
    if abs(steps) > 1:
        leader = "cause" if steps > 0 else "symptom"
    return replace(
        result,
        leader=leader,
        lag=timedelta(seconds=gap),
        lag_steps=steps,
        cause_onset=cause_onset.at,
        symptom_onset=symptom_onset.at,
        decided_by="onsets",
    )


def _lag_steps(max_lag: int | float | timedelta, width: float) -> int:
    if isinstance(max_lag, int) and not isinstance(max_lag, bool):
        return max(max_lag, 0)
    return max(int(round(seconds(max_lag) / width)), 0)


def _changes(values: FloatArray, span: int) -> FloatArray:
    span = max(1, min(span, len(values) - 1))
    changes = values[span:] - values[:-span]
    center = float(np.median(changes)) if len(changes) else 0.0
    spread = 1.4826 * float(np.median(np.abs(changes - center))) if len(changes) else 0.0
    if spread <= 0:
        spread = float(np.abs(changes - center).mean()) if len(changes) else 0.0
    if spread <= 0:
        return np.zeros_like(changes)
    return np.clip((changes - center) / spread, -CLIP_Z, CLIP_Z)


def _shifted_correlation(a: FloatArray, b: FloatArray, lag: int) -> float:
    """Correlation of a[t] with b[t + lag]."""
    if lag > 0:
        a, b = a[:-lag], b[lag:]
    elif lag < 0:
        a, b = a[-lag:], b[:lag]
    if len(a) < 3:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


def _standard_error(a: FloatArray, b: FloatArray, horizon: int) -> float:
    """Bartlett's standard error of a cross-correlation between two autocorrelated series."""
    n = len(a)
    total = 1.0
    for k in range(1, min(horizon, n - 2) + 1):
        total += 2 * _shifted_correlation(a, a, k) * _shifted_correlation(b, b, k)
    return math.sqrt(max(total, 1.0) / n)
