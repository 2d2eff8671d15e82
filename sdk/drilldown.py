"""Dimension drill-down: which slice of a multi-dimensional total explains its change.

Every leaf (one combination of all dimension values) has an observed value and an expected
one: its baseline value or, for a ratio measure, its count times its baseline rate (errors per
request). `casebook.sdk.lattice` searches the slices for the one that best separates changed
leaves from normal ones, widens it while the leaves around it changed too, and adds further
causes while they stay significant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from casebook.sdk.lattice import FloatArray, IntArray, Mask, Search, cuboids_of, fit_noise

# z-score at which a slice's score reaches 1 - 1/e of its explanatory power.
SCORE_Z = 3.0


def slice_name(where: Mapping[str, Any]) -> str:
    """The canonical name of a slice: sorted `dim=value` pairs joined with `&`.

    >>> slice_name({"p2p": 1, "bitrate": 2000})
    'bitrate=2000&p2p=1'
    """
    return "&".join(f"{k}={v}" for k, v in sorted((str(k), _text(v)) for k, v in where.items()))


def parse_slice(name: str) -> dict[str, str]:
    """The `dim -> value` mapping of a slice name (the inverse of `slice_name`).

    >>> parse_slice("bitrate=2000&p2p=1")
    {'bitrate': '2000', 'p2p': '1'}
    """
    where: dict[str, str] = {}
    for part in filter(None, name.split("&")):
        dim, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"slice name {name!r}: part {part!r} is not dim=value")
        where[dim] = value
    return where


@dataclass(frozen=True)
class Slice:
    """One slice of the total with its numbers: observed, expected and how much it explains."""

    where: dict[str, str] = field(hash=False)
    value: float  # observed in the period under investigation
    expected: float  # what it would show had it kept its baseline behaviour
    baseline: float  # the baseline value as given
    explanatory_power: float  # share of the total's change this slice carries
    surprise: float  # Jensen-Shannon divergence of its share before vs after (Adtributor)
    significance: float  # z-score of its change against the rest's, under the fitted noise
    score: float  # explanatory power discounted by weak significance, in [0, 1]
    count: float | None = None
    baseline_count: float | None = None

    @property
    def name(self) -> str:
        """The slice's canonical name, e.g. `region=eu&version=v2`."""
        return slice_name(self.where)

    @property
    def change(self) -> float:
        """Observed minus expected."""
        return self.value - self.expected

    @property
    def ratio(self) -> float:
        """Observed over expected (inf when nothing was expected)."""
        return self.value / self.expected if self.expected else math.inf

    @property
    def rate(self) -> float | None:
        """Value per count now (ratio measures only)."""
        return None if self.count is None else _divide(self.value, self.count)

    @property
    def baseline_rate(self) -> float | None:
        """Value per count in the baseline (ratio measures only)."""
        if self.baseline_count is None:
            return None
        return _divide(self.baseline, self.baseline_count)


@dataclass(frozen=True)
class DrillDown:
    """The causes (slices that explain the change together), the best single slices, the total."""

    causes: tuple[Slice, ...]
    candidates: tuple[Slice, ...]
    total: Slice
    dimensions: tuple[str, ...]
    chance_z: float  # significance the best of this many slices reaches on noise alone

    @property
    def names(self) -> list[str]:
        """The causes' slice names."""
        return [c.name for c in self.causes]

    @property
    def explained(self) -> float:
        """Share of the total change the causes carry together."""
        return sum(c.explanatory_power for c in self.causes)


@dataclass
class _Leaves:
    names: tuple[str, ...]
    codes: IntArray  # leaf x dimension -> value code
    labels: list[np.ndarray[Any, Any]]  # per dimension: code -> value text
    observed: FloatArray
    expected: FloatArray
    baseline: FloatArray
    count: FloatArray | None
    baseline_count: FloatArray | None


def drill_down(
    rows: Iterable[Mapping[str, Any]],
    dimensions: Sequence[str],
    value: str = "value",
    baseline: str = "baseline",
    *,
    count: str | None = None,
    baseline_count: str | None = None,
    max_depth: int = 3,
    max_causes: int = 3,
    top: int = 10,
    direction: Literal["auto", "up", "down"] = "auto",
) -> DrillDown:
    """Find the slice(s) that explain the change of a total over the given dimensions.

    Additive measures: each row has `value` (now) and `baseline` (for the same length of time
    before). Ratio measures (errors per request): also pass `count` and `baseline_count`; slices
    are then judged on their rate, so a traffic shift alone explains nothing.

    The first cause is the best explanation there is, even of noise: its `significance` well
    above the result's `chance_z` says the slice really stands out. Further causes are only
    added when they are significant beyond chance and carry a tenth of the change.

    >>> rows = [{"cdn": c, "isp": i, "value": 50 if c == "b" else 10, "baseline": 10}
    ...         for c in "abc" for i in "xyz"]
    >>> drill_down(rows, ["cdn", "isp"]).names
    ['cdn=b']
    """
    dimensions = tuple(dimensions)
    leaves = _leaves(list(rows), dimensions, value, baseline, count, baseline_count)
    observed, expected = leaves.observed, leaves.expected
    sign = _direction(direction, float(observed.sum()), float(expected.sum()))
    noise = fit_noise(observed, expected, counts=count is not None)
    search = Search(observed, expected, cuboids_of(leaves.codes, max_depth), noise, sign)

    def describe(mask: Mask, dims: tuple[int, ...]) -> Slice:
        where = _where(leaves, dims, mask)
        return _slice(leaves, mask, where, sign * search.z(mask, ~mask) if dims else 0.0)

    causes: list[Slice] = []
    candidates: list[Slice] = []
    for step in range(max_causes):
        cause, ranking = search.next_cause()
        if step == 0:
            candidates = [describe(search.mask(c), search.dims(c)) for c in ranking[:top]]
        if cause is None:
            break
        causes.append(describe(search.mask(cause), search.dims(cause)))
    everything = np.ones(len(observed), dtype=bool)
    return DrillDown(
        causes=tuple(causes),
        candidates=tuple(candidates),
        total=describe(everything, ()),
        dimensions=dimensions,
        chance_z=search.chance_z,
    )


def _leaves(
    rows: list[Mapping[str, Any]],
    dimensions: tuple[str, ...],
    value: str,
    baseline: str,
    count: str | None,
    baseline_count: str | None,
) -> _Leaves:
    if not dimensions:
        raise ValueError("drill_down: give at least one dimension, e.g. ['region', 'version']")
    if not rows:
        raise ValueError("drill_down: no rows; query the slices of the total first")
    if (count is None) != (baseline_count is None):
        raise ValueError(
            "drill_down: pass both count= and baseline_count= for a ratio measure, or neither"
        )
    measures = [m for m in (value, baseline, count, baseline_count) if m is not None]
    missing = [c for c in (*dimensions, *measures) if c not in rows[0]]
    if missing:
        raise ValueError(
            f"drill_down: the rows have no column {', '.join(missing)}; "
            f"their columns are {', '.join(map(str, rows[0]))}"
        )
    codes_by_dim, labels = [], []
    for dim in dimensions:
        texts = np.array([_text(r[dim]) for r in rows], dtype=object)
        uniques, inverse = np.unique(texts, return_inverse=True)
        codes_by_dim.append(inverse.reshape(-1).astype(np.int64))
        labels.append(uniques)
    leaf_codes, leaf_of_row = np.unique(np.stack(codes_by_dim, axis=1), axis=0, return_inverse=True)
    leaf_of_row = leaf_of_row.reshape(-1)

    def summed(column: str) -> FloatArray:
        numbers = np.array([_number(r[column], column) for r in rows], dtype=np.float64)
        if (numbers < 0).any():
            raise ValueError(
                f"drill_down: column {column} has negative values; the drill-down needs "
                "non-negative measures (counts, sums, durations)"
            )
        return np.bincount(leaf_of_row, weights=numbers, minlength=len(leaf_codes))

    observed, base = summed(value), summed(baseline)
    cnt = bcnt = None
    if count is None or baseline_count is None:
        expected = base.copy()
    else:
        cnt, bcnt = summed(count), summed(baseline_count)
        expected = cnt * _smoothed_rates(base, bcnt)
    positive = np.concatenate([observed[observed > 0], expected[expected > 0]])
    floor = 0.5 * float(positive.min()) if len(positive) else 1.0
    # something from nothing is a change, but not an infinitely surprising one
    expected = np.where((observed > 0) & (expected <= 0), floor, expected)
    return _Leaves(
        dimensions, leaf_codes.astype(np.int64), labels, observed, expected, base, cnt, bcnt
    )


def _smoothed_rates(events: FloatArray, counts: FloatArray) -> FloatArray:
    """Baseline rates shrunk towards the overall rate by a prior worth one event.

    A leaf seen twice without an error must not make its first error a sensation.
    """
    total_counts = float(counts.sum())
    overall = float(events.sum()) / total_counts if total_counts > 0 else 0.0
    if overall <= 0:
        overall = 0.5 / max(total_counts, 1.0)
    prior = 1.0 / overall
    return (events + prior * overall) / (counts + prior)


def _where(leaves: _Leaves, dims: tuple[int, ...], mask: Mask) -> dict[str, str]:
    first = int(np.flatnonzero(mask)[0])
    return {leaves.names[d]: str(leaves.labels[d][leaves.codes[first, d]]) for d in dims}


def _slice(leaves: _Leaves, mask: Mask, where: dict[str, str], significance: float) -> Slice:
    obs, exp = float(leaves.observed[mask].sum()), float(leaves.expected[mask].sum())
    total_obs, total_exp = float(leaves.observed.sum()), float(leaves.expected.sum())
    power = _divide(obs - exp, total_obs - total_exp)
    confidence = 1.0 - math.exp(-max(significance, 0.0) / SCORE_Z)
    return Slice(
        where=where,
        value=obs,
        expected=exp,
        baseline=float(leaves.baseline[mask].sum()),
        explanatory_power=power,
        surprise=_js_divergence(_divide(exp, total_exp), _divide(obs, total_obs)),
        significance=significance,
        score=min(max(power, 0.0), 1.0) * confidence,
        count=None if leaves.count is None else float(leaves.count[mask].sum()),
        baseline_count=(
            None if leaves.baseline_count is None else float(leaves.baseline_count[mask].sum())
        ),
    )


def _js_divergence(p: float, q: float) -> float:
    m = (p + q) / 2
    if m <= 0:
        return 0.0
    return 0.5 * sum(x * math.log(x / m) for x in (p, q) if x > 0)


def _direction(direction: str, observed: float, expected: float) -> int:
    if direction == "up":
        return 1
    if direction == "down":
        return -1
    if direction != "auto":
        raise ValueError(f"drill_down: direction must be 'auto', 'up' or 'down', not {direction!r}")
    return 1 if observed >= expected else -1


def _divide(a: float, b: float | None) -> float:
    return a / b if b else 0.0


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def _number(value: Any, column: str) -> float:
    """A measure as a float; missing (NULL, NaN) counts as nothing."""
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"drill_down: column {column} must hold numbers, found {value!r}"
        ) from None
    return 0.0 if math.isnan(number) else number
