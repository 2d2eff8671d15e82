"""Dimension drill-down: which slice of a multi-dimensional total explains its change.

Every leaf (one combination of all dimension values) has an observed value and an expected
one: its baseline value, or, when counts are given, its count times its baseline rate (errors
per request). A slice (`cdn=5&p2p=0`) is scored with a quasi-Poisson scan statistic: how much
better the leaves fit when the slice and the rest each get their own change factor. The slice
that fits best is the cause; its descendants' gain is already its own (the ripple effect), its
ancestors dilute it with normal leaves, so the statistic prefers the slice that is exactly as
general as the change. Further causes are added while they are significant on the leaves not
yet explained.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

# Gain (in dispersion units, like a chi-square statistic) a further cause needs, on top of
# what the number of candidate slices alone would produce by chance.
EXTRA_CAUSE_MARGIN = 10.0
# A further cause must also carry this share of the first cause's gain.
EXTRA_CAUSE_SHARE = 0.1
# A related (more general or more specific) slice is considered when it keeps this share of the
# best slice's gain; it wins when the leaves in which they differ did (or did not) change too.
RELATED_GAIN_SHARE = 0.5
# Leaves count as changed with a chi-square-like significance of at least this...
RELATED_SIGNIFICANCE = 10.0
# ...and a change factor at least this share of the best slice's (both against the rest).
RELATED_EFFECT_SHARE = 0.2


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
            raise ValueError(f"slice {name!r}: part {part!r} is not dim=value")
        where[dim] = value
    return where


@dataclass(frozen=True)
class Slice:
    """One slice of the total with its numbers: observed, expected and how much it explains."""

    where: dict[str, str] = field(hash=False)
    value: float  # observed in the period under investigation
    expected: float  # what the slice would show had it kept its baseline behaviour
    baseline: float  # the baseline value as given
    explanatory_power: float  # share of the total's change this slice carries
    surprise: float  # Jensen-Shannon divergence of its share before vs after (Adtributor)
    significance: float  # scan statistic in dispersion units (chi-square-like)
    score: float  # significance mapped to [0, 1]
    count: float | None = None
    baseline_count: float | None = None

    @property
    def name(self) -> str:
        return slice_name(self.where)

    @property
    def change(self) -> float:
        return self.value - self.expected

    @property
    def ratio(self) -> float:
        """Observed over expected (inf when nothing was expected)."""
        return self.value / self.expected if self.expected else math.inf

    @property
    def rate(self) -> float | None:
        return _safe_div(self.value, self.count) if self.count is not None else None

    @property
    def baseline_rate(self) -> float | None:
        if self.baseline_count is None:
            return None
        return _safe_div(self.baseline, self.baseline_count)


@dataclass(frozen=True)
class DrillDown:
    """The result of a drill-down: the causes, the best-scoring slices, and the total."""

    causes: tuple[Slice, ...]
    candidates: tuple[Slice, ...]
    total: Slice
    dimensions: tuple[str, ...]
    dispersion: float

    @property
    def explained(self) -> float:
        """Share of the total change the causes carry together."""
        return sum(c.explanatory_power for c in self.causes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.causes]


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

    Additive measures: each row has `value` (now) and `baseline` (the same period length
    before). Ratio measures (errors per request): also pass `count` and `baseline_count`;
    slices are then judged on their rate, so traffic shifts alone explain nothing.

    >>> rows = [{"cdn": c, "isp": i, "value": 50 if c == "b" else 10, "baseline": 10}
    ...         for c in "abc" for i in "xyz"]
    >>> drill_down(rows, ["cdn", "isp"]).names
    ['cdn=b']
    """
    dimensions = tuple(dimensions)
    leaves = _leaves(list(rows), dimensions, value, baseline, count, baseline_count)
    observed, expected = leaves.observed, leaves.expected
    total_observed, total_expected = float(observed.sum()), float(expected.sum())
    sign = _direction(direction, total_observed, total_expected)
    dispersion = _dispersion(observed, expected, count is not None)
    cuboids = _cuboids(leaves.codes, max_depth)
    n_candidates = sum(int(keys.max()) + 1 for _, keys in cuboids)
    threshold = 2.0 * math.log(max(n_candidates, 2)) + EXTRA_CAUSE_MARGIN

    def describe(mask: np.ndarray[Any, Any], where: dict[str, str], gain: float) -> Slice:
        return _slice(leaves, mask, where, gain / dispersion, threshold)

    search = _Search(observed, expected, cuboids, dispersion, sign)
    causes: list[Slice] = []
    first_ranking: list[Candidate] = []
    for step in range(max_causes):
        ranking = search.rank()
        if step == 0:
            first_ranking = ranking
        if not ranking:
            break
        best = search.refine(ranking)
        if step > 0 and (
            best.gain / dispersion < threshold
            or best.gain < EXTRA_CAUSE_SHARE * search.first_gain
        ):
            break
        mask = search.mask(best)
        causes.append(describe(mask, _where(leaves, cuboids[best.cuboid][0], mask), best.gain))
        search.take(best)

    candidates = []
    for candidate in first_ranking[:top]:
        mask = search.mask(candidate)
        where = _where(leaves, cuboids[candidate.cuboid][0], mask)
        candidates.append(describe(mask, where, candidate.gain))
    everything = np.ones(len(observed), dtype=bool)
    return DrillDown(
        causes=tuple(causes),
        candidates=tuple(candidates),
        total=describe(everything, {}, 0.0),
        dimensions=dimensions,
        dispersion=dispersion,
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
            f"drill_down: rows have no column(s) {', '.join(missing)}; "
            f"their columns are {', '.join(map(str, rows[0]))}"
        )
    codes_by_dim, labels = [], []
    for dim in dimensions:
        texts = np.array([_text(r[dim]) for r in rows], dtype=object)
        uniques, inverse = np.unique(texts, return_inverse=True)
        codes_by_dim.append(inverse.astype(np.int64))
        labels.append(uniques)
    row_codes = np.stack(codes_by_dim, axis=1)
    leaf_codes, leaf_of_row = np.unique(row_codes, axis=0, return_inverse=True)
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
    if count is None or baseline_count is None:
        expected = base.copy()
        cnt = bcnt = None
    else:
        cnt, bcnt = summed(count), summed(baseline_count)
        expected = cnt * _smoothed_rates(base, bcnt)
    positive = np.concatenate([observed[observed > 0], expected[expected > 0]])
    floor = 0.5 * float(positive.min()) if len(positive) else 1.0
    expected = np.where((observed > 0) & (expected <= 0), floor, expected)
    return _Leaves(dimensions, leaf_codes.astype(np.int64), labels, observed, expected, base, cnt, bcnt)


def _smoothed_rates(events: FloatArray, counts: FloatArray) -> FloatArray:
    """Baseline rates shrunk towards the overall rate by a prior worth one event.

    A leaf seen twice with no error must not make its first error infinitely surprising.
    """
    total_counts = float(counts.sum())
    overall = float(events.sum()) / total_counts if total_counts > 0 else 0.0
    if overall <= 0:
        overall = 0.5 / max(total_counts, 1.0)
    prior = 1.0 / overall
    return (events + prior * overall) / (counts + prior)


def _dispersion(observed: FloatArray, expected: FloatArray, counts: bool) -> float:
    """Robust quasi-Poisson dispersion: how much noisier than Poisson the leaves are."""
    total_expected = float(expected.sum())
    drift = float(observed.sum()) / total_expected if total_expected > 0 else 1.0
    fitted = expected * drift
    usable = fitted > 0
    if usable.sum() < 3:
        return 1.0
    residual = (observed[usable] - fitted[usable]) ** 2 / fitted[usable]
    order = np.argsort(residual)
    weights = np.cumsum(fitted[usable][order])
    median = float(residual[order][np.searchsorted(weights, weights[-1] / 2)])
    dispersion = median / 0.455  # the median of a chi-square with one degree of freedom
    if counts:
        return max(dispersion, 1.0)
    return dispersion if dispersion > 0 else 1.0


def _cuboids(codes: IntArray, max_depth: int) -> list[tuple[tuple[int, ...], IntArray]]:
    """Every combination of up to `max_depth` dimensions, with each leaf's slice index in it."""
    n_dims = codes.shape[1]
    out = []
    for depth in range(1, min(max_depth, n_dims) + 1):
        for dims in itertools.combinations(range(n_dims), depth):
            _, keys = np.unique(codes[:, dims], axis=0, return_inverse=True)
            out.append((dims, keys.reshape(-1).astype(np.int64)))
    return out


def _loglik(observed: FloatArray, expected: FloatArray) -> FloatArray:
    safe_obs = np.where(observed > 0, observed, 1.0)
    safe_exp = np.where(expected > 0, expected, 1.0)
    return np.where(observed > 0, observed * np.log(safe_obs / safe_exp), 0.0)


@dataclass(frozen=True)
class Candidate:
    gain: float
    cuboid: int
    key: int


class _Search:
    """Greedy search over the slice lattice with a quasi-Poisson scan statistic."""

    def __init__(
        self,
        observed: FloatArray,
        expected: FloatArray,
        cuboids: list[tuple[tuple[int, ...], IntArray]],
        dispersion: float,
        sign: int,
    ) -> None:
        self.observed, self.expected = observed, expected
        self.cuboids, self.dispersion, self.sign = cuboids, dispersion, sign
        self.index_of = {dims: i for i, (dims, _) in enumerate(cuboids)}
        self.free = np.ones(len(observed), dtype=bool)
        self.chosen: list[tuple[tuple[int, ...], np.ndarray[Any, Any]]] = []
        self.first_gain = 0.0

    def mask(self, candidate: Candidate) -> np.ndarray[Any, Any]:
        return self.cuboids[candidate.cuboid][1] == candidate.key

    def take(self, candidate: Candidate) -> None:
        mask = self.mask(candidate)
        if not self.chosen:
            self.first_gain = candidate.gain
        self.chosen.append((self.cuboids[candidate.cuboid][0], mask))
        self.free &= ~mask

    def rank(self) -> list[Candidate]:
        """Candidate slices by gain on the leaves not yet explained, best first."""
        obs_free, exp_free = self.observed * self.free, self.expected * self.free
        total_obs, total_exp = float(obs_free.sum()), float(exp_free.sum())
        base = _loglik(np.array([total_obs]), np.array([total_exp]))[0]
        ranking: list[Candidate] = []
        for index, (dims, keys) in enumerate(self.cuboids):
            size = int(keys.max()) + 1
            inside_obs = np.bincount(keys, weights=obs_free, minlength=size)
            inside_exp = np.bincount(keys, weights=exp_free, minlength=size)
            outside_obs, outside_exp = total_obs - inside_obs, total_exp - inside_exp
            gain = _loglik(inside_obs, inside_exp) + _loglik(outside_obs, outside_exp) - base
            rate_in = inside_obs / np.where(inside_exp > 0, inside_exp, np.inf)
            rate_out = outside_obs / np.where(outside_exp > 0, outside_exp, np.inf)
            valid = (inside_exp > 0) & (self.sign * (rate_in - rate_out) > 0)
            for chosen_dims, mask in self.chosen:
                if set(dims) <= set(chosen_dims) or set(chosen_dims) <= set(dims):
                    valid[np.unique(keys[mask])] = False
            ranking.extend(Candidate(float(gain[k]), index, int(k)) for k in np.flatnonzero(valid))
        ranking.sort(key=lambda c: -c.gain)
        return ranking

    def refine(self, ranking: list[Candidate]) -> Candidate:
        """Move from the best slice to the one exactly as general as the change.

        An ancestor wins when the leaves it adds changed too (the change is wider than the
        best slice); a descendant wins when the leaves it drops did not change.
        """
        by_slice = {(c.cuboid, c.key): c for c in ranking}
        best = ranking[0]
        general = self._generalize(best, by_slice)
        if general is not best:
            return general
        current = best
        while True:
            narrower = None  # self._specialize(current, ranking)
            if narrower is None:
                return current
            current = narrower

    def _generalize(
        self, best: Candidate, by_slice: dict[tuple[int, int], Candidate]
    ) -> Candidate:
        dims = self.cuboids[best.cuboid][0]
        best_mask = self.mask(best)
        leaf = int(np.flatnonzero(best_mask)[0])
        options = []
        for depth in range(1, len(dims)):
            for sub in itertools.combinations(dims, depth):
                index = self.index_of[sub]
                ancestor = by_slice.get((index, int(self.cuboids[index][1][leaf])))
                if ancestor is None or ancestor.gain < RELATED_GAIN_SHARE * best.gain:
                    continue
                added = self.mask(ancestor) & ~best_mask
                if self._changed(added, self.mask(ancestor), best_mask):
                    options.append((depth, -ancestor.gain, ancestor))
        if not options:
            return best
        return min(options, key=lambda o: (o[0], o[1]))[2]

    def _specialize(self, current: Candidate, ranking: list[Candidate]) -> Candidate | None:
        dims = set(self.cuboids[current.cuboid][0])
        current_mask = self.mask(current)
        for candidate in ranking:
            if candidate.gain < RELATED_GAIN_SHARE * current.gain:
                return None
            cand_dims = self.cuboids[candidate.cuboid][0]
            if not dims < set(cand_dims):
                continue
            mask = self.mask(candidate)
            if (mask & ~current_mask).any():
                continue
            if not self._changed(current_mask & ~mask, current_mask, mask):
                return candidate
        return None

    def _changed(
        self,
        part: np.ndarray[Any, Any],
        whole: np.ndarray[Any, Any],
        core: np.ndarray[Any, Any],
    ) -> bool:
        """Whether `part` (whole minus core) changed like the core did, against the rest."""
        part = part & self.free
        rest = self.free & ~whole
        core = core & self.free
        if not part.any() or not rest.any():
            return False
        m_part = _ratio(self.observed[part].sum(), self.expected[part].sum())
        m_rest = _ratio(self.observed[rest].sum(), self.expected[rest].sum())
        m_core = _ratio(self.observed[core].sum(), self.expected[core].sum())
        if m_core == m_rest or (m_part - m_rest) / (m_core - m_rest) < RELATED_EFFECT_SHARE:
            return False
        both = part | rest
        obs = np.array([self.observed[m].sum() for m in (part, rest, both)])
        exp = np.array([self.expected[m].sum() for m in (part, rest, both)])
        ll = _loglik(obs, exp)
        return bool((ll[0] + ll[1] - ll[2]) / self.dispersion >= RELATED_SIGNIFICANCE)


def _ratio(observed: float, expected: float) -> float:
    return float(observed / expected) if expected > 0 else 0.0


def _where(leaves: _Leaves, dims: tuple[int, ...], mask: np.ndarray[Any, Any]) -> dict[str, str]:
    first = int(np.flatnonzero(mask)[0])
    return {leaves.names[d]: str(leaves.labels[d][leaves.codes[first, d]]) for d in dims}


def _slice(
    leaves: _Leaves,
    mask: np.ndarray[Any, Any],
    where: dict[str, str],
    significance: float,
    threshold: float,
) -> Slice:
    obs, exp = float(leaves.observed[mask].sum()), float(leaves.expected[mask].sum())
    total_obs, total_exp = float(leaves.observed.sum()), float(leaves.expected.sum())
    change, total_change = obs - exp, total_obs - total_exp
    return Slice(
        where=where,
        value=obs,
        expected=exp,
        baseline=float(leaves.baseline[mask].sum()),
        explanatory_power=_safe_div(change, total_change),
        surprise=_js_divergence(_safe_div(exp, total_exp), _safe_div(obs, total_obs)),
        significance=significance,
        score=significance / (significance + threshold) if significance > 0 else 0.0,
        count=None if leaves.count is None else float(leaves.count[mask].sum()),
        baseline_count=(
            None if leaves.baseline_count is None else float(leaves.baseline_count[mask].sum())
        ),
    )


def _js_divergence(p: float, q: float) -> float:
    m = (p + q) / 2
    if m <= 0:
        return 0.0
    terms = [x * math.log(x / m) for x in (p, q) if x > 0]
    return 0.5 * sum(terms)


def _direction(direction: str, observed: float, expected: float) -> int:
    if direction == "up":
        return 1
    if direction == "down":
        return -1
    if direction != "auto":
        raise ValueError(f"drill_down: direction must be 'auto', 'up' or 'down', got {direction!r}")
    return 1 if observed >= expected else -1


def _safe_div(a: float, b: float | None) -> float:
    return a / b if b else 0.0


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def _number(value: Any, column: str) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"drill_down: column {column} must hold numbers, found {value!r}"
        ) from None
