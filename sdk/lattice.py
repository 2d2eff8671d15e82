"""The search over the lattice of slices that `drill_down` runs.

Leaves are the finest slices (one value in every dimension), each with an observed and an
expected value. Slices are ranked by a Poisson scan statistic (Kulldorff's): how much better
the leaves fit when the slice and the rest each get their own change factor. Leaves it drops
that changed cost it gain, normal leaves it adds dilute it, so the best slice is about as
general as the change. Decisions about how sure a difference is use a noise model fitted on
the leaves themselves, since real leaves are far noisier than Poisson (variance grows with
the square of the size: rates fluctuate).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# numpy arrays of floats, of integer codes, of booleans (aliases for readability)
FloatArray = npt.NDArray[Any]
IntArray = npt.NDArray[Any]
Mask = npt.NDArray[Any]
Cuboid = tuple[tuple[int, ...], IntArray]  # dimension indices, each leaf's slice key

# An ancestor of the best slice is considered when it keeps this share of its gain...
RELATED_GAIN_SHARE = 0.5
# ...and wins when the leaves it adds changed too: by at least this share of the best
# slice's change factor (over the rest's)...
RELATED_EFFECT_SHARE = 0.1
# ...with at least this z-score against the rest.
RELATED_Z = 2.0
# A further cause needs this z-score plus what searching all candidates gives by chance...
EXTRA_CAUSE_Z = 3.0
# ...and must carry this share of the first cause's gain and of the total's change.
EXTRA_CAUSE_SHARE = 0.1


@dataclass(frozen=True)
class Noise:
    """Leaf noise: variance = linear * expected + quadratic * expected**2."""

    linear: float
    quadratic: float

    def z(self, excess: float, expected: float, expected_squares: float) -> float:
        """How many standard deviations an excess over `expected` is."""
        variance = self.linear * expected + self.quadratic * expected_squares
        if variance <= 0:
            return 0.0 if excess == 0 else math.copysign(math.inf, excess)
        return excess / math.sqrt(variance)


def fit_noise(observed: FloatArray, expected: FloatArray, counts: bool) -> Noise:
    """Fit the noise model robustly (medians of squared Pearson residuals, small vs large leaves).

    Counts are at least Poisson (linear >= 1); other measures have no natural unit.
    """
    fitted = expected * _typical_factor(observed, expected)
    usable = fitted > 0
    fitted, residual = fitted[usable], (observed[usable] - fitted[usable]) ** 2
    floor = 1.0 if counts else 0.0
    if len(fitted) == 0:
        return Noise(1.0, 0.0)
    # 0.455 is the median of a chi-square with one degree of freedom
    ratio = residual / fitted / 0.455
    if len(fitted) < 6:
        return Noise(max(float(np.median(ratio)), floor) or 1.0, 0.0)
    order = np.argsort(fitted)
    low, high = order[: len(order) // 2], order[len(order) // 2 :]
    size_low, size_high = float(np.median(fitted[low])), float(np.median(fitted[high]))
    if size_high < 2 * size_low:  # leaves of about one size: one spread fits them all
        return Noise(max(float(np.median(ratio)), floor) or 1.0, 0.0)
    ratio_low, ratio_high = float(np.median(ratio[low])), float(np.median(ratio[high]))
    quadratic = max((ratio_high - ratio_low) / (size_high - size_low), 0.0)
    linear = max(ratio_low - quadratic * size_low, floor)
    if linear <= 0 and quadratic <= 0:
        linear = float(np.median(ratio)) or 1.0
    return Noise(linear, quadratic)


def _typical_factor(observed: FloatArray, expected: FloatArray) -> float:
    """The change factor of the typical leaf (median weighted by size), not of the total:
    the changed leaves must not set the yardstick for the normal ones."""
    usable = expected > 0
    if not usable.any():
        return 1.0
    factors, weights = observed[usable] / expected[usable], expected[usable]
    order = np.argsort(factors)
    cumulative = np.cumsum(weights[order])
    middle = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    return float(factors[order][middle]) or 1.0


@dataclass(frozen=True)
class Candidate:
    """A slice in the ranking: its gain, its cuboid's index and its key there."""

    gain: float
    cuboid: int
    key: int


def cuboids_of(codes: IntArray, max_depth: int) -> list[Cuboid]:
    """Every combination of up to `max_depth` dimensions, with each leaf's slice in it."""
    out = []
    for depth in range(1, min(max_depth, codes.shape[1]) + 1):
        for dims in itertools.combinations(range(codes.shape[1]), depth):
            _, keys = np.unique(codes[:, dims], axis=0, return_inverse=True)
            out.append((dims, keys.reshape(-1).astype(np.int64)))
    return out


def loglik(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """observed * log(observed / expected), 0 where nothing was observed."""
    safe_obs = np.where(observed > 0, observed, 1.0)
    safe_exp = np.where(expected > 0, expected, 1.0)
    return np.where(observed > 0, observed * np.log(safe_obs / safe_exp), 0.0)


class Search:
    """Greedy cause search: best slice, refined to its right generality, then the next."""

    def __init__(
        self,
        observed: FloatArray,
        expected: FloatArray,
        cuboids: list[Cuboid],
        noise: Noise,
        sign: int,
    ) -> None:
        self.observed, self.expected = observed, expected
        self.cuboids, self.noise, self.sign = cuboids, noise, sign
        self.index_of = {dims: i for i, (dims, _) in enumerate(cuboids)}
        self.free: Mask = np.ones(len(observed), dtype=bool)
        self.chosen: list[tuple[tuple[int, ...], Mask]] = []
        self.first_gain = 0.0
        n_candidates = sum(int(keys.max()) + 1 for _, keys in cuboids)
        self.chance_z = math.sqrt(2.0 * math.log(max(n_candidates, 2)))
        self.extra_z = EXTRA_CAUSE_Z + self.chance_z

    def mask(self, candidate: Candidate) -> Mask:
        """The leaves in the candidate's slice."""
        return self.cuboids[candidate.cuboid][1] == candidate.key

    def dims(self, candidate: Candidate) -> tuple[int, ...]:
        """The dimensions (indices) the candidate's slice fixes."""
        return self.cuboids[candidate.cuboid][0]

    def next_cause(self) -> tuple[Candidate | None, list[Candidate]]:
        """The next cause (None when no slice is worth adding) and the ranking it came from."""
        ranking = self.rank()
        if not ranking:
            return None, ranking
        best = self.refine(ranking)
        if self.chosen:
            mask = self.mask(best) & self.free
            change = float(self.observed.sum() - self.expected.sum())
            power = float(self.observed[mask].sum() - self.expected[mask].sum()) / (change or 1.0)
            if (
                best.gain < EXTRA_CAUSE_SHARE * self.first_gain
                or power < EXTRA_CAUSE_SHARE
                or self.sign * self.z(mask, self.free & ~mask) < self.extra_z
            ):
                return None, ranking
        else:
            self.first_gain = best.gain
        self.chosen.append((self.dims(best), self.mask(best)))
        self.free &= ~self.mask(best)
        return best, ranking

    def rank(self) -> list[Candidate]:
        """Slices by gain on the leaves not yet explained, best first."""
        obs_free, exp_free = self.observed * self.free, self.expected * self.free
        total_obs, total_exp = float(obs_free.sum()), float(exp_free.sum())
        base = loglik(np.array([total_obs]), np.array([total_exp]))[0]
        ranking: list[Candidate] = []
        for index, (dims, keys) in enumerate(self.cuboids):
            size = int(keys.max()) + 1
            inside_obs = np.bincount(keys, weights=obs_free, minlength=size)
            inside_exp = np.bincount(keys, weights=exp_free, minlength=size)
            outside_obs, outside_exp = total_obs - inside_obs, total_exp - inside_exp
            gain = loglik(inside_obs, inside_exp) + loglik(outside_obs, outside_exp) - base
            factor_in = inside_obs / np.where(inside_exp > 0, inside_exp, np.inf)
            factor_out = outside_obs / np.where(outside_exp > 0, outside_exp, np.inf)
            valid = (inside_exp > 0) & (self.sign * (factor_in - factor_out) > 0)
            for chosen_dims, mask in self.chosen:
                # a cause's ancestors and descendants would only restate it
                if set(dims) <= set(chosen_dims) or set(chosen_dims) <= set(dims):
                    valid[np.unique(keys[mask])] = False
            ranking.extend(Candidate(float(gain[k]), index, int(k)) for k in np.flatnonzero(valid))
        ranking.sort(key=lambda c: -c.gain)
        return ranking

    def refine(self, ranking: list[Candidate]) -> Candidate:
        """Widen the best slice to an ancestor when the leaves the ancestor adds changed too."""
        by_slice = {(c.cuboid, c.key): c for c in ranking}
        current = ranking[0]
        while True:
            wider = self._generalize(current, by_slice, ranking[0].gain)
            if wider is None:
                return current
            current = wider

    def _generalize(
        self, current: Candidate, by_slice: dict[tuple[int, int], Candidate], best_gain: float
    ) -> Candidate | None:
        dims, core = self.dims(current), self.mask(current)
        leaf = int(np.flatnonzero(core)[0])
        options = []
        for depth in range(1, len(dims)):
            for sub in itertools.combinations(dims, depth):
                index = self.index_of[sub]
                ancestor = by_slice.get((index, int(self.cuboids[index][1][leaf])))
                if ancestor is None or ancestor.gain < RELATED_GAIN_SHARE * best_gain:
                    continue
                whole = self.mask(ancestor)
                if self._changed_alike(whole & ~core, core, self.free & ~whole):
                    options.append(ancestor)
        return max(options, key=lambda c: c.gain) if options else None

    def _changed_alike(self, part: Mask, core: Mask, rest: Mask) -> bool:
        """Whether `part` changed in the core's direction, clearly and by a fair share of it."""
        part, core, rest = part & self.free, core & self.free, rest & self.free
        if not part.any() or not rest.any():
            return False
        f_part, f_core, f_rest = (self._factor(m) for m in (part, core, rest))
        if f_core == f_rest or (f_part - f_rest) / (f_core - f_rest) < RELATED_EFFECT_SHARE:
            return False
        return self.sign * self.z(part, rest) >= RELATED_Z

    def z(self, part: Mask, rest: Mask) -> float:
        """z-score of `part` against what the rest's change factor predicts for it.

        The variance is taken under the null hypothesis (one factor for both).
        """
        pooled = self.expected[part] * self._factor(part | rest)
        return self.noise.z(
            float(self.observed[part].sum())
            - self._factor(rest) * float(self.expected[part].sum()),
            float(pooled.sum()),
            float((pooled**2).sum()),
        )

    def _factor(self, mask: Mask) -> float:
        expected = float(self.expected[mask].sum())
        return float(self.observed[mask].sum()) / expected if expected > 0 else 0.0
