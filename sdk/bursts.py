"""Concentration and bursts: many requests from few keys; many events in a short interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from casebook.sdk.series import seconds, to_datetime, to_epoch

# -log10(p) at which a burst's score reaches 1.
SCORE_DECADES = 10.0


@dataclass(frozen=True)
class KeyShare:
    """One key's count and share of the total (and its count in the baseline, if given)."""

    key: str
    count: float
    share: float  # of the total
    baseline_count: float | None = None


@dataclass(frozen=True)
class Concentration:
    """How concentrated a total is on few keys (accounts, IPs, tenants, ...)."""

    total: float
    keys: int
    top: tuple[KeyShare, ...]  # the largest keys, largest first
    top_share: float  # share of the total carried by `top`
    hhi: float  # Herfindahl-Hirschman index: sum of squared shares (1 = a single key)
    gini: float  # 0 when all keys are equal, towards 1 when one key has everything
    effective_keys: float  # 1 / hhi: how many equal keys would give this concentration
    baseline_hhi: float | None
    score: float  # hhi above even (or above the baseline's), scaled to [0, 1]


def concentration(
    counts: Mapping[Any, float] | Iterable[tuple[Any, float]],
    *,
    top: int = 5,
    baseline: Mapping[Any, float] | Iterable[tuple[Any, float]] | None = None,
) -> Concentration:
    """Measure how much of a total a few keys carry, optionally against a baseline period.

    >>> result = concentration({"acct-1": 900, "acct-2": 50, "acct-3": 50}, top=1)
    >>> result.top[0].key, result.top_share
    ('acct-1', 0.9)
    """
    pairs = _pairs(counts, "counts")
    values = np.array([v for _, v in pairs], dtype=np.float64)
    total = float(values.sum())
    if not pairs or total <= 0:
        raise ValueError("concentration: counts are empty or all zero; nothing to measure")
    order = np.argsort(-values, kind="stable")
    shares = values / total
    hhi = float((shares**2).sum())
    base = dict(_pairs(baseline, "baseline")) if baseline is not None else None
    base_hhi = _hhi(list(base.values())) if base else None
    leaders = tuple(
        KeyShare(
            key=pairs[i][0],
            count=float(values[i]),
            share=float(shares[i]),
            baseline_count=None if base is None else float(base.get(pairs[i][0], 0.0)),
        )
        for i in order[:top]
    )
    floor = base_hhi if base_hhi is not None else 1.0 / len(pairs)
    return Concentration(
        total=total,
        keys=len(pairs),
        top=leaders,
        top_share=float(sum(k.share for k in leaders)),
        hhi=hhi,
        gini=_gini(values),
        effective_keys=1.0 / hhi,
        baseline_hhi=base_hhi,
        score=max(0.0, (hhi - floor) / (1.0 - floor)) if floor < 1.0 else 0.0,
    )


def _pairs(counts: Any, label: str) -> list[tuple[str, float]]:
    items = counts.items() if isinstance(counts, Mapping) else counts
    pairs = []
    for key, value in items:
        number = float(value or 0.0)
        if number < 0:
            raise ValueError(f"concentration: {label} has a negative count {number} for {key!r}")
        pairs.append((str(key), number))
    return pairs


def _hhi(values: Sequence[float]) -> float | None:
    total = float(sum(values))
    return float(sum((v / total) ** 2 for v in values)) if total > 0 else None


def _gini(values: np.ndarray[Any, Any]) -> float:
    if len(values) < 2:
        return 0.0
    ordered = np.sort(values)
    n = len(ordered)
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * ordered).sum()) / (n * ordered.sum()) - (n + 1) / n)


@dataclass(frozen=True)
class Burst:
    """The densest interval of events and how unusual it is against the rest of the period."""

    start: datetime
    end: datetime
    count: int  # events inside
    expected: float  # events a window this long holds at the rate of the rest
    ratio: float  # count / expected
    share: float  # share of all events inside
    p_value: float  # chance of so dense a window anywhere in the period at the rest's rate
    score: float  # -log10(p_value) / 10, capped at 1
    keys: tuple[str, ...]  # the keys of the events inside (when keys were given), first 100


def burst(
    times: Sequence[Any],
    window: float | timedelta = timedelta(minutes=5),
    *,
    keys: Sequence[Any] | None = None,
    start: Any = None,
    end: Any = None,
) -> Burst | None:
    """Find the `window`-long interval holding the most events, and how unlikely it is.

    The rest of the period (`start` to `end`, by default the first to the last event) sets
    the background rate; the p-value is the Poisson tail of the window's count, multiplied by
    the number of window positions searched. None when there are no events.

    >>> signups = [60.0 * i for i in range(60)] + [3000.0 + i for i in range(30)]
    >>> found = burst(signups, window=60)
    >>> found.count, found.p_value < 1e-6
    (31, True)
    """
    width = seconds(window)
    if width <= 0:
        raise ValueError(f"burst: window must be positive, got {window!r}")
    if keys is not None and len(keys) != len(times):
        raise ValueError(f"burst: {len(times)} times but {len(keys)} keys; give one key per time")
    stamps = np.array([to_epoch(t) for t in times], dtype=np.float64)
    if len(stamps) == 0:
        return None
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order]
    first = to_epoch(start) if start is not None else float(stamps[0])
    last = to_epoch(end) if end is not None else float(stamps[-1])
    # events in [t_i, t_i + width) for every i: the densest window starts at an event
    ends = np.searchsorted(stamps, stamps + width, side="left")
    inside = ends - np.arange(len(stamps))
    best = int(np.argmax(inside))
    count = int(inside[best])
    span = max(last - first, width)
    rest_time = max(span - width, width)
    rate = (len(stamps) - count) / rest_time
    expected = rate * width
    positions = max(span / width, 1.0)
    p_value = min(1.0, _poisson_tail(count, expected) * positions)
    chosen = order[best : best + count]
    return Burst(
        start=to_datetime(stamps[best]),
        end=to_datetime(stamps[best] + width),
        count=count,
        expected=expected,
        ratio=count / expected if expected > 0 else math.inf,
        share=count / len(stamps),
        p_value=p_value,
        score=min(1.0, -math.log10(max(p_value, 1e-300)) / SCORE_DECADES),
        keys=tuple(str(keys[i]) for i in chosen[:100]) if keys is not None else (),
    )


def _poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), computed in log space."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    upper = int(max(k, mean) + 10 * math.sqrt(k + mean)) + 50
    terms = np.arange(k, upper + 1, dtype=np.float64)
    logs = terms * math.log(mean) - mean - np.array([math.lgamma(t + 1) for t in terms])
    peak = float(logs.max())
    return float(min(1.0, math.exp(peak) * np.exp(logs - peak).sum()))
