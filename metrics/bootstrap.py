"""Seeded bootstrap intervals over images: how much a metric's value owes to its sample of images.

The unit of resampling is the image (a prompt of the benchmark, with its generated image, its
reference photo and every crop or feature taken from them). One resample is N images drawn with
replacement from the N of a run; a metric is then recomputed on that resampled set exactly as the
row computes it on the whole set (docs/metrics-holistic.md, "Intervals"). Every metric of a row is
evaluated on the SAME resamples, and two runs over the same images (matched by stem,
:func:`paired_positions`) on the same resamples give the interval of their difference
(:class:`Difference`).

Resampling is reproducible on any numpy release: the raw 64-bit output of ``np.random.PCG64(seed)``
(a bit generator's stream is fixed by numpy's compatibility policy, unlike ``Generator`` methods)
mapped to [0, N) by rejection (values at or above the largest multiple of N are dropped, then
``x % N``): exactly uniform, in stream order. Quantiles are computed here too (Hyndman and Fan's
type 7, numpy's and scipy's default "linear"), so no interval depends on a library routine.

A statistic maps an index matrix (B resamples x M drawn positions, each in [0, N)) to B values: the
metric on each materialised resampled set. The per-image ones are here (:class:`Mean`,
:class:`RatioOfSums`); FID and KID in aesthetic4k_metrics.bootstrap_distances. This module needs
numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
METHODS = ("percentile", "centred", "bca")
MIN_IMAGES = 2          # with one image every resample is that image: no interval
_TWO_TO_64 = 1 << 64


# ---------------------------------------------------------------- resampling


def draw_positions(n: int, count: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``count`` int64 positions in [0, n), uniform and independent, from the raw stream of PCG64(seed)."""
    n, count, seed = int(n), int(count), int(seed)
    if n < 1 or count < 0:
        raise ValueError(f"drawing needs n >= 1 and count >= 0, got n={n}, count={count}")
    if seed < 0:
        raise ValueError(f"the bootstrap seed must be >= 0, got {seed}")
    bits = np.random.PCG64(seed)
    limit = (_TWO_TO_64 // n) * n          # below it, x % n hits every residue equally often
    out = np.empty(count, np.int64)
    filled = 0
    while filled < count:                  # accepted values in stream order, however many are rejected
        raw = bits.random_raw(count - filled)
        if limit < _TWO_TO_64:
            raw = raw[raw < np.uint64(limit)]
        out[filled:filled + raw.size] = (raw % np.uint64(n)).astype(np.int64)
        filled += raw.size
    return out


def resample_indices(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples, n) int64 positions in [0, n), drawn with replacement; row b is resample b in draw order.

    Depends only on (n, resamples, seed), and the first k rows do not depend on ``resamples``.
    """
    if int(resamples) < 1:
        raise ValueError(f"resampling needs resamples >= 1, got {resamples}")
    return draw_positions(n, int(resamples) * int(n), seed).reshape(int(resamples), int(n))


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(B, n) int64: how many times each image is in each resample of an index matrix."""
    indices = np.asarray(indices, np.int64)
    rows = indices.shape[0]
    flat = (indices + n * np.arange(rows, dtype=np.int64)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def whole_set(n: int) -> np.ndarray:
    """The index matrix of the run itself: one 'resample' holding every image once."""
    return np.arange(int(n), dtype=np.int64)[None]


def leave_one_out(n: int) -> np.ndarray:
    """(n, n - 1) index matrix: row i is every image but image i (the jackknife of BCa)."""
    n = int(n)
    full = np.broadcast_to(np.arange(n, dtype=np.int64), (n, n))
    return full[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def paired_positions(stems_a: Sequence[str], stems_b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the stems both runs have, in run A's order: ``a[i]`` and ``b[i]`` are one image.

    Reorder each run's per-image data by them before building the statistics of a :class:`Difference`.
    Duplicate stems within a run are refused (they would not say which image is which).
    """
    for label, stems in (("first", stems_a), ("second", stems_b)):
        if len(set(stems)) != len(stems):
            raise ValueError(f"the {label} run lists an image stem more than once")
    where_b = {stem: i for i, stem in enumerate(stems_b)}
    pairs = [(i, where_b[stem]) for i, stem in enumerate(stems_a) if stem in where_b]
    a = np.array([i for i, _ in pairs], np.int64)
    b = np.array([j for _, j in pairs], np.int64)
    return a, b


# ---------------------------------------------------------------- statistics


class Statistic:
    """A metric as a function of a resampled image set. Subclasses set ``n`` and define ``values``."""

    n: int = 0

    def values(self, indices: np.ndarray) -> np.ndarray:
        """(B, M) positions in [0, n) -> (B,) float64: the metric on each materialised resample."""
        raise NotImplementedError

    def estimate(self) -> float:
        """The metric on the whole set (every image once): the row's own value."""
        return float(self.values(whole_set(self.n))[0])

    def _checked(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"expected a (B, M) integer index matrix, got {indices.dtype} {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.n):
            raise ValueError(f"resample positions must lie in [0, {self.n})")
        return indices.astype(np.int64, copy=False)


def _per_image(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected one value per image, got shape {array.shape}")
    return array


def _weighted_sums(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """counts @ values, NaN where a resample holds an image whose value is NaN (and only there)."""
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    sums = counts @ np.where(missing, 0, values)
    if missing.any():
        sums = np.where(counts @ missing.astype(np.int64) > 0, np.nan, sums)
    return sums


class Mean(Statistic):
    """The mean of per-image values (GLCM Score, CLIPScore, Aesthetics): ``np.mean`` of each resampled set."""

    def __init__(self, values):
        self.per_image = _per_image(values, "Mean").astype(np.float64)
        self.n = self.per_image.size

    def values(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        with np.errstate(invalid="ignore", divide="ignore"):      # no image: NaN, as np.mean of nothing
            return _weighted_sums(resample_counts(indices, self.n), self.per_image) / indices.shape[1]


class RatioOfSums(Statistic):
    """``sum(numerators) / sum(denominators)`` of each resampled set; NaN where the denominator is <= 0.

    The Compression Ratio: ``RatioOfSums(raw_bytes, jpeg_bytes)`` (CompressionRatio.byte_counts()).
    Integer inputs are summed exactly, so the whole set gives compression_ratio()'s very bits.
    """

    def __init__(self, numerators, denominators):
        num, den = _per_image(numerators, "RatioOfSums"), _per_image(denominators, "RatioOfSums")
        if num.shape != den.shape:
            raise ValueError(f"RatioOfSums: {num.size} numerators for {den.size} denominators")
        as_type = (lambda a: a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float64))
        self.numerators, self.denominators = as_type(num), as_type(den)
        self.n = num.size

    def values(self, indices) -> np.ndarray:
        counts = resample_counts(self._checked(indices), self.n)
        top, bottom = _weighted_sums(counts, self.numerators), _weighted_sums(counts, self.denominators)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


class Difference(Statistic):
    """``first - second`` on the same resamples: two runs over the same images, put in one order first."""

    def __init__(self, first: Statistic, second: Statistic):
        if first.n != second.n:
            raise ValueError(f"a paired difference needs the same images in both runs, got {first.n} and {second.n}")
        self.first, self.second, self.n = first, second, first.n

    def values(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        return self.first.values(indices) - self.second.values(indices)


# ---------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval; ``low`` and ``high`` are NaN when it is undefined (see bootstrap_interval)."""

    low: float
    high: float
    estimate: float       # the metric on the whole set
    level: float
    method: str
    resamples: int
    images: int
    seed: int | None = None
    shift: float = math.nan   # mean of the resampled values minus the estimate (the resampling bias)

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def defined(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float = 0.0) -> bool:
        """True when the interval lies wholly above or below ``value`` (False when undefined)."""
        return self.defined and (self.low > value or self.high < value)


def quantiles(values: np.ndarray, probabilities) -> np.ndarray:
    """Type-7 sample quantiles (linear interpolation between order statistics) of finite values."""
    ordered = np.sort(np.asarray(values, np.float64))
    probabilities = np.asarray(probabilities, np.float64)
    position = (ordered.size - 1) * probabilities
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, ordered.size - 1)
    fraction = position - below
    return ordered[below] + fraction * (ordered[above] - ordered[below])


def _bca_probabilities(values: np.ndarray, estimate: float, jackknife: np.ndarray, alpha: float):
    """Efron's bias-corrected and accelerated quantile levels, or None where they are undefined."""
    normal = NormalDist()
    share = (np.count_nonzero(values < estimate) + np.count_nonzero(values <= estimate)) / (2 * values.size)
    if not 0 < share < 1 or not np.isfinite(jackknife).all():
        return None
    bias = normal.inv_cdf(share)
    spread = jackknife.mean() - jackknife
    squares = float((spread ** 2).sum())
    acceleration = float((spread ** 3).sum()) / (6 * squares ** 1.5) if squares > 0 else 0.0
    levels = []
    for z in (normal.inv_cdf(alpha), normal.inv_cdf(1 - alpha)):
        shifted = bias + z
        levels.append(normal.cdf(bias + shifted / (1 - acceleration * shifted)))
    return levels


def interval_of(values: np.ndarray, estimate: float, images: int, level: float = DEFAULT_LEVEL,
                method: str = "percentile", jackknife: np.ndarray | None = None, seed: int | None = None) -> Interval:
    """The interval from a statistic's B bootstrap ``values`` (and, for BCa, its ``jackknife`` values).

    ``percentile`` (default): the type-7 quantiles at (1 - level) / 2 and (1 + level) / 2 of the
    values. ``centred``: those quantiles minus ``shift`` (mean of the values minus the estimate): the
    spread of the resampled values around the row's own value. For FID and KID a resampled set
    (about 63 % distinct images, copies counted as samples) sits above the estimate by more than
    its spread at N = 195, so the percentile interval can miss the estimate; for means the shift is
    Monte-Carlo noise and both agree. ``bca``: the quantiles at Efron's bias-corrected and
    accelerated levels (bias from the share of values below the estimate, ties counted half;
    acceleration from the jackknife over images, 0 when its values are all equal). Undefined (NaN
    low and high) with fewer than MIN_IMAGES images, when the estimate or any value is not finite
    (a resample on which the metric is undefined: dropping it would bias the interval), and for BCa
    when every value lies on one side of the estimate.
    """
    if not 0 < level < 1:
        raise ValueError(f"the interval level must lie strictly between 0 and 1, got {level}")
    if method not in METHODS:
        raise ValueError(f"interval method must be one of {', '.join(METHODS)}, got {method!r}")
    values = np.asarray(values, np.float64)
    undefined = Interval(math.nan, math.nan, float(estimate), level, method, values.size, int(images), seed)
    if images < MIN_IMAGES or not math.isfinite(estimate) or not values.size or not np.isfinite(values).all():
        return undefined
    alpha = (1 - level) / 2
    probabilities = [alpha, 1 - alpha]
    if method == "bca":
        if jackknife is None:
            raise ValueError("a BCa interval needs the statistic's jackknife values")
        probabilities = _bca_probabilities(values, estimate, np.asarray(jackknife, np.float64), alpha)
        if probabilities is None:
            return undefined
    shift = math.fsum(values) / values.size - float(estimate)      # exactly rounded: no summation order
    low, high = quantiles(values, probabilities) - (shift if method == "centred" else 0.0)
    return Interval(float(low), float(high), float(estimate), level, method, values.size, int(images), seed, shift)


def bootstrap_interval(statistic: Statistic, indices: np.ndarray, level: float = DEFAULT_LEVEL,
                       method: str = "percentile", seed: int | None = None) -> Interval:
    """The ``level`` interval of ``statistic`` on the resamples of an index matrix (see interval_of)."""
    estimate = statistic.estimate()
    if statistic.n < MIN_IMAGES or not math.isfinite(estimate):
        return interval_of(np.full(len(indices), math.nan), estimate, statistic.n, level, method, None, seed)
    values = statistic.values(statistic._checked(indices))
    jackknife = (statistic.values(leave_one_out(statistic.n))
                 if method == "bca" and np.isfinite(values).all() else None)
    return interval_of(values, estimate, statistic.n, level, method, jackknife, seed)


def row_intervals(statistics: Mapping[str, Statistic], resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL,
                  method: str = "percentile") -> dict[str, Interval]:
    """One interval per metric of a row, every metric on the same resamples of the same N images.

    With FID, KID or their patch variants among them, ``method="centred"`` keeps each interval around
    the row's value (see interval_of); for per-image metrics it agrees with ``percentile``.
    """
    sizes = {name: statistic.n for name, statistic in statistics.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the metrics of a row must cover the same images, got counts {sizes}")
    if not statistics:
        return {}
    n = next(iter(sizes.values()))
    indices = resample_indices(n, resamples, seed) if n >= MIN_IMAGES else np.zeros((int(resamples), n), np.int64)
    return {name: bootstrap_interval(statistic, indices, level, method, seed) for name, statistic in statistics.items()}
