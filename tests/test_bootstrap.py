"""Bootstrap intervals (metrics/bootstrap.py, metrics/bootstrap_distances.py) against independent references.

Per-image statistics: a direct numpy computation on every materialised resample, and scipy.stats.bootstrap
within a Monte-Carlo tolerance derived from B. Set-level ones: the real metric code (FID / KID classes,
frechet_distance, compression_ratio) on the materialised resampled sets, scipy.linalg.sqrtm, and a
40-digit mpmath computation where float64 references are themselves too noisy (N < d).
"""
import math
from statistics import NormalDist

import numpy as np
import pytest
import torch
from torch import nn

from aesthetic4k_metrics.bootstrap import (Difference, Interval, Mean, RatioOfSums, bootstrap_interval,
                                           leave_one_out, paired_positions, quantiles, resample_counts,
                                           resample_indices, row_intervals, whole_set)
from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic, nuclear_norms

scipy_stats = pytest.importorskip("scipy.stats")


class Identity(nn.Module):
    """The 'network' of a metric fed features directly (update(features=...)): only its width matters."""

    def __init__(self, dim):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


def inception_like(rng, shape, rank=6, offset=0.5):
    """Non-negative, low-rank-plus-noise float32 features, like pooled ReLU activations."""
    basis = np.random.default_rng(99).normal(size=(rank, shape[-1]))
    z = rng.normal(size=shape[:-1] + (rank,))
    return np.maximum(z @ basis + offset + 0.1 * rng.normal(size=shape), 0).astype(np.float32)


def metric_fid(generated, reference) -> float:
    """metrics/fid.py's FID on two feature sets (the row's own computation)."""
    from aesthetic4k_metrics.fid import FID

    metric = FID(Identity(generated.shape[-1]))
    metric.update(features=torch.from_numpy(np.ascontiguousarray(reference)), real=True)
    metric.update(features=torch.from_numpy(np.ascontiguousarray(generated)), real=False)
    return float(metric.compute())


def metric_kid(generated, reference, **settings) -> float:
    from aesthetic4k_metrics.kid import KID

    metric = KID(Identity(generated.shape[-1]), **settings)
    metric.update(features=torch.from_numpy(np.ascontiguousarray(reference)), real=True)
    metric.update(features=torch.from_numpy(np.ascontiguousarray(generated)), real=False)
    return float(metric.compute()[0])


def sqrtm_fid(generated, reference) -> float:
    """The textbook computation: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    from scipy import linalg

    a, b = generated.astype(np.float64), reference.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


def materialised(features, draws):
    """The resampled set itself: each drawn image's rows, in draw order ((N, d) or (N, P, d) features)."""
    picked = features[draws]
    return picked.reshape(-1, features.shape[-1])


# ---------------------------------------------------------------- resampling


def test_resamples_are_the_pcg64_raw_stream_mapped_without_bias():
    # numpy's PCG64 stream is fixed by its compatibility policy; these are its first outputs for seed 0
    assert np.random.PCG64(0).random_raw(3).tolist() == [11749869230777074271, 4976686463289251617,
                                                         755828109848996024]
    for n in (7, 8, 195):
        raw = [int(x) for x in np.random.PCG64(5).random_raw(4 * n)]
        expected = [x % n for x in raw][:3 * n]       # 2**64 // n * n rejects nothing here (p < 1e-16)
        assert resample_indices(n, 3, seed=5).ravel().tolist() == expected


def test_rejection_keeps_the_stream_order():
    from aesthetic4k_metrics.bootstrap import draw_positions

    n = 3 << 61                      # the largest multiple of n below 2**64 is 3 * 2**62: a quarter is rejected
    raw = [int(x) for x in np.random.PCG64(2).random_raw(80)]
    expected = [x % n for x in raw if x < (1 << 64) // n * n]
    assert len(expected) < 70
    assert draw_positions(n, 40, seed=2).tolist() == expected[:40]


def test_resamples_depend_only_on_n_and_seed_and_extend():
    first = resample_indices(50, 10, seed=3)
    assert np.array_equal(first, resample_indices(50, 10, seed=3))
    assert np.array_equal(first[:4], resample_indices(50, 4, seed=3))
    assert not np.array_equal(first, resample_indices(50, 10, seed=4))
    assert first.shape == (10, 50) and first.dtype == np.int64 and 0 <= first.min() and first.max() < 50
    counts = resample_counts(first, 50)
    assert np.array_equal(counts, np.stack([np.bincount(row, minlength=50) for row in first]))
    assert (counts.sum(axis=1) == 50).all()
    with pytest.raises(ValueError):
        resample_indices(0, 10)
    with pytest.raises(ValueError):
        resample_indices(5, 10, seed=-1)


def test_leave_one_out_and_paired_positions():
    assert leave_one_out(3).tolist() == [[1, 2], [0, 2], [0, 1]]
    assert whole_set(3).tolist() == [[0, 1, 2]]
    a, b = paired_positions(["x", "y", "z", "w"], ["w", "z", "q", "x"])
    assert a.tolist() == [0, 2, 3] and b.tolist() == [3, 1, 0]
    with pytest.raises(ValueError, match="more than once"):
        paired_positions(["x", "x"], ["x"])


# ---------------------------------------------------------------- per-image statistics


def monte_carlo_tolerance(values, endpoint, resamples, sigmas=5.0):
    """Allowed gap between our endpoint and scipy's, each from its own B resamples: sigmas x the standard
    error of their difference. The SE of a p-quantile from B draws is sqrt(p (1 - p) / B) dq/dp, with p
    the endpoint's level among our values and dq/dp from the quantile spacing around it (the tails of a
    skewed bootstrap distribution are sparse, so this is wider there than a normal approximation)."""
    p = float(np.mean(values <= endpoint))
    step = min(0.005, p / 2, (1 - p) / 2)
    spread = np.quantile(values, [p - step, p + step])
    slope = (spread[1] - spread[0]) / (2 * step)
    return sigmas * math.sqrt(2) * math.sqrt(p * (1 - p) / resamples) * slope


def test_mean_equals_numpy_on_each_resample_and_scipy_interval():
    rng = np.random.default_rng(0)
    per_image = rng.gamma(2.0, 3.0, size=60)          # skewed, like per-image scores
    resamples = 20000
    indices = resample_indices(60, resamples, seed=1)
    statistic = Mean(per_image)
    values = statistic.values(indices)
    assert np.allclose(values, [per_image[row].mean() for row in indices], rtol=1e-13, atol=0)
    assert statistic.estimate() == pytest.approx(per_image.mean(), rel=1e-15)
    for method, scipy_method in (("percentile", "percentile"), ("bca", "BCa")):
        ours = bootstrap_interval(statistic, indices, method=method)
        theirs = scipy_stats.bootstrap((per_image,), np.mean, n_resamples=resamples, method=scipy_method,
                                       confidence_level=0.95, random_state=np.random.default_rng(7))
        assert abs(ours.low - theirs.confidence_interval.low) < monte_carlo_tolerance(values, ours.low, resamples)
        assert abs(ours.high - theirs.confidence_interval.high) < monte_carlo_tolerance(values, ours.high, resamples)
    # the percentile endpoints are the type-7 quantiles of our own values
    ours = bootstrap_interval(statistic, indices)
    assert (ours.low, ours.high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])), rel=1e-14)


def test_bca_shifts_a_skewed_interval_like_scipy():
    # a strongly skewed statistic: BCa must move away from the percentile interval in scipy's direction
    rng = np.random.default_rng(4)
    per_image = rng.lognormal(0.0, 1.2, size=40)
    indices = resample_indices(40, 20000, seed=2)
    percentile = bootstrap_interval(Mean(per_image), indices)
    bca = bootstrap_interval(Mean(per_image), indices, method="bca")
    theirs = scipy_stats.bootstrap((per_image,), np.mean, n_resamples=20000, method="BCa",
                                   random_state=np.random.default_rng(3)).confidence_interval
    values = Mean(per_image).values(indices)
    assert bca.low > percentile.low and bca.high > percentile.high
    assert abs(bca.low - theirs.low) < monte_carlo_tolerance(values, bca.low, 20000)
    assert abs(bca.high - theirs.high) < monte_carlo_tolerance(values, bca.high, 20000)


def test_centred_interval_is_the_percentile_interval_moved_onto_the_estimate():
    rng = np.random.default_rng(8)
    generated, reference = inception_like(rng, (16, 12)), inception_like(rng, (16, 12), offset=0.7)
    indices = resample_indices(16, 40, seed=5)
    statistic = FrechetStatistic(generated, reference, paired=True)
    values, estimate = statistic.values(indices), statistic.estimate()
    centred = bootstrap_interval(statistic, indices, method="centred")
    shift = values.mean() - estimate
    assert centred.shift == pytest.approx(shift, rel=1e-12) and shift > 0
    assert (centred.low, centred.high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975]) - shift), rel=1e-12)
    assert centred.low < estimate < centred.high
    # for a mean the resampling shift is Monte-Carlo noise: centred and percentile nearly agree
    per_image = rng.normal(size=50)
    indices = resample_indices(50, 5000, seed=1)
    plain = bootstrap_interval(Mean(per_image), indices)
    moved = bootstrap_interval(Mean(per_image), indices, method="centred")
    assert abs(moved.shift) < 4 * np.std(Mean(per_image).values(indices)) / math.sqrt(5000)
    assert moved.low - plain.low == pytest.approx(-moved.shift, abs=1e-12)


def test_quantiles_are_type_7():
    values = np.random.default_rng(1).normal(size=101)
    probabilities = [0.0, 0.025, 0.3, 0.5, 0.975, 1.0]
    assert quantiles(values, probabilities) == pytest.approx(np.quantile(values, probabilities), rel=1e-14)


def test_ratio_of_sums_is_the_compression_ratio_of_each_resample():
    from aesthetic4k_metrics.compression import compression_ratio
    from aesthetic4k_metrics.detail import CompressionRatio, DetailMeasurement

    rng = np.random.default_rng(2)
    sides = rng.integers(512, 4097, size=(30, 2))
    jpeg = rng.integers(200_000, 9_000_000, size=30)
    metric = CompressionRatio()
    metric.add([DetailMeasurement(None, int(w), int(h), jpeg_bytes=int(j), jpeg_mode="jpeg95")
                for (w, h), j in zip(sides, jpeg)])
    statistic = RatioOfSums(*metric.byte_counts())
    assert statistic.estimate() == metric.compute()               # exact: integer sums
    indices = resample_indices(30, 200, seed=0)
    raw, compressed = metric.byte_counts()
    expected = [compression_ratio(int(raw[row].sum()), int(compressed[row].sum())) for row in indices]
    assert statistic.values(indices).tolist() == expected
    interval = bootstrap_interval(statistic, indices)
    assert interval.low < metric.compute() < interval.high
    # not a mean of per-image ratios
    assert statistic.estimate() != pytest.approx(float(metric.per_image().mean()), rel=1e-6)


def test_nan_values_undefined_intervals_and_small_sets():
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    indices = resample_indices(5, 50, seed=0)
    got = Mean(values).values(indices)
    expected = np.array([values[row].mean() for row in indices])
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.isnan(got).any() and not np.isnan(got).all()
    assert np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-14)
    interval = bootstrap_interval(Mean(values), indices)
    assert math.isnan(interval.low) and math.isnan(interval.high) and not interval.defined
    assert not interval.excludes(0.0)
    one = bootstrap_interval(Mean([3.0]), resample_indices(1, 10))
    assert one.estimate == 3.0 and not one.defined
    assert RatioOfSums([10, 20], [0, 0]).estimate() != RatioOfSums([10, 20], [0, 0]).estimate()   # NaN
    constant = bootstrap_interval(Mean([2.0] * 6), resample_indices(6, 30))
    assert (constant.low, constant.high) == (2.0, 2.0)
    constant = bootstrap_interval(Mean([2.0] * 6), resample_indices(6, 30), method="bca")   # no bias, no skew
    assert (constant.low, constant.high) == (2.0, 2.0)
    with pytest.raises(ValueError):
        bootstrap_interval(Mean(values), indices, level=1.0)
    with pytest.raises(ValueError):
        bootstrap_interval(Mean(values), indices, method="studentized")
    with pytest.raises(ValueError):
        Mean(values).values(indices + 5)


def test_paired_difference_within_noise_and_beyond():
    rng = np.random.default_rng(5)
    base = rng.normal(7.0, 0.4, size=12)
    noise = np.where(np.arange(12) % 2, 0.05, -0.05)         # half a little better, half a little worse
    indices = resample_indices(12, 2000, seed=0)
    within = bootstrap_interval(Difference(Mean(base + noise), Mean(base)), indices)
    assert within.low < 0 < within.high and not within.excludes(0.0)
    worse = bootstrap_interval(Difference(Mean(base - 0.2 + noise), Mean(base)), indices)
    assert worse.high < 0 and worse.excludes(0.0)
    difference = Difference(Mean(base + noise), Mean(base)).values(indices)
    assert np.allclose(difference, Mean(noise).values(indices), atol=1e-12)
    with pytest.raises(ValueError):
        Difference(Mean(base), Mean(base[:5]))


def test_row_intervals_share_one_set_of_resamples():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=25), rng.normal(size=25)
    out = row_intervals({"x": Mean(a), "y": Mean(b)}, resamples=300, seed=9)
    indices = resample_indices(25, 300, seed=9)
    assert out["x"] == bootstrap_interval(Mean(a), indices, seed=9)
    assert out["y"] == bootstrap_interval(Mean(b), indices, seed=9)
    assert isinstance(out["x"], Interval) and out["x"].seed == 9 and out["x"].resamples == 300
    with pytest.raises(ValueError, match="same images"):
        row_intervals({"x": Mean(a), "y": Mean(b[:3])})
    empty = row_intervals({"x": Mean(np.zeros(0))})
    assert not empty["x"].defined


# ---------------------------------------------------------------- FID family


def test_nuclear_norms_are_sums_of_singular_values():
    rng = np.random.default_rng(0)
    matrices = [rng.normal(size=shape) for shape in [(5, 7), (5, 7), (9, 9), (3, 12), (9, 9)]]
    expected = [np.linalg.svd(m, compute_uv=False).sum() for m in matrices]
    assert nuclear_norms([m.shape for m in matrices], matrices.__getitem__) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(40, 16), (24, 48)])        # N > d, and realistic N < d (low rank)
def test_fid_paired_equals_the_metric_on_each_materialised_resample(shape):
    rng = np.random.default_rng(1)
    generated, reference = inception_like(rng, shape), inception_like(rng, shape, offset=0.6)
    indices = resample_indices(shape[0], 12, seed=0)
    statistic = FrechetStatistic(generated, reference, paired=True)
    fast = statistic.values(indices)
    slow = [metric_fid(materialised(generated, row), materialised(reference, row)) for row in indices]
    assert fast == pytest.approx(slow, rel=1e-6)
    assert statistic.estimate() == pytest.approx(metric_fid(generated, reference), rel=1e-6)
    scipy_values = [sqrtm_fid(materialised(generated, row), materialised(reference, row)) for row in indices[:4]]
    assert fast[:4] == pytest.approx(scipy_values, rel=1e-6)


def test_fid_fast_path_is_exact_where_float64_references_are_not():
    """N < d: sqrtm and eigh on d x d matrices take square roots of rounding noise in the null space
    (about 1e-7 relative here); a 40-digit computation shows the fast path is right to ~1e-15."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(3)
    generated, reference = inception_like(rng, (10, 24), rank=4), inception_like(rng, (10, 24), rank=4, offset=0.7)
    draws = resample_indices(10, 1, seed=4)[0]
    a, b = materialised(generated, draws).astype(np.float64), materialised(reference, draws).astype(np.float64)
    with mpmath.workdps(40):
        def moments(x):
            rows = [[mpmath.mpf(float(v)) for v in row] for row in x]
            mean = [mpmath.fsum(col) / len(rows) for col in zip(*rows)]
            centred = mpmath.matrix([[v - m for v, m in zip(row, mean)] for row in rows])
            return mean, centred.T * centred / (len(rows) - 1)

        mean1, s1 = moments(a)
        mean2, s2 = moments(b)
        values, vectors = mpmath.eigsy(s1)
        root1 = vectors * mpmath.diag([mpmath.sqrt(max(v, 0)) for v in values]) * vectors.T
        middle = root1 * s2 * root1
        trace_root = mpmath.fsum(mpmath.sqrt(max(v, 0)) for v in mpmath.eigsy(middle, eigvals_only=True))
        exact = (mpmath.fsum((x - y) ** 2 for x, y in zip(mean1, mean2))
                 + mpmath.fsum(s1[i, i] + s2[i, i] for i in range(s1.rows)) - 2 * trace_root)
    fast = FrechetStatistic(generated, reference, paired=True).values(draws[None])[0]
    assert fast == pytest.approx(float(exact), rel=1e-12)
    assert metric_fid(a, b) == pytest.approx(float(exact), rel=1e-5)       # the metric code: noisier


def test_fid_against_a_fixed_reference_and_saved_moments():
    rng = np.random.default_rng(2)
    generated = inception_like(rng, (30, 40))
    folder = inception_like(rng, (45, 40), offset=0.65)           # another set: more images than generated
    indices = resample_indices(30, 10, seed=1)
    fixed = FrechetStatistic(generated, folder, paired=False).values(indices)
    slow = [metric_fid(materialised(generated, row), folder) for row in indices]
    assert fixed == pytest.approx(slow, rel=1e-6)
    mean = folder.astype(np.float64).mean(0)
    covariance = np.cov(folder.astype(np.float64), rowvar=False)
    moments = FrechetStatistic.from_moments(generated, mean, covariance).values(indices)
    assert moments == pytest.approx(slow, rel=1e-6)
    with pytest.raises(ValueError):
        FrechetStatistic.from_moments(generated, mean[:5], covariance)
    with pytest.raises(ValueError, match="one per generated"):
        FrechetStatistic(generated, folder, paired=True)


def test_patch_fid_resamples_images_with_all_their_crops():
    rng = np.random.default_rng(3)
    generated, reference = inception_like(rng, (12, 4, 32)), inception_like(rng, (12, 4, 32), offset=0.6)
    indices = resample_indices(12, 8, seed=2)
    statistic = FrechetStatistic(generated, reference, paired=True)
    slow = [metric_fid(materialised(generated, row), materialised(reference, row)) for row in indices]
    assert statistic.values(indices) == pytest.approx(slow, rel=1e-6)
    as_list = FrechetStatistic(list(generated), list(reference), paired=True)
    assert as_list.values(indices) == pytest.approx(slow, rel=1e-6)
    jackknife = statistic.values(leave_one_out(12))
    assert jackknife[0] == pytest.approx(metric_fid(generated[1:].reshape(-1, 32), reference[1:].reshape(-1, 32)),
                                         rel=1e-6)


def test_images_with_different_numbers_of_rows():
    from aesthetic4k_metrics.bootstrap_distances import ImageFeatures

    rng = np.random.default_rng(7)
    parts = [rng.normal(size=(k, 5)).astype(np.float32) for k in (1, 3, 2, 4)]
    features = ImageFeatures(parts)
    assert features.n == 4 and features.owner.tolist() == [0, 1, 1, 1, 2, 2, 3, 3, 3, 3]
    assert features.materialised(np.array([2, 0, 2])).tolist() == [4, 5, 0, 4, 5]
    reference = [rng.normal(size=(k, 5)).astype(np.float32) + 0.3 for k in (2, 2, 3, 1)]
    indices = resample_indices(4, 6, seed=1)
    fast = FrechetStatistic(parts, reference, paired=True).values(indices)
    slow = [metric_fid(np.concatenate([parts[i] for i in row]), np.concatenate([reference[i] for i in row]))
            for row in indices]
    assert fast == pytest.approx(slow, rel=1e-6)      # fid.py: null-space noise where a resample has rank < d
    with pytest.raises(ValueError):
        ImageFeatures(np.zeros((3, 4, 5, 6)))


def test_kid_on_resampled_sets_counts_copies_as_distinct_samples():
    rng = np.random.default_rng(4)
    generated, reference = inception_like(rng, (20, 16)), inception_like(rng, (20, 16), offset=0.55)
    indices = resample_indices(20, 10, seed=3)
    statistic = KIDStatistic(generated, reference, paired=True)
    slow = [metric_kid(materialised(generated, row), materialised(reference, row)) for row in indices]
    assert statistic.values(indices) == pytest.approx(slow, rel=1e-9, abs=1e-12)
    # a direct formula: mean kernel over ordered pairs of distinct POSITIONS of the materialised set
    row = indices[0]
    x, y = materialised(reference, row).astype(np.float64), materialised(generated, row).astype(np.float64)
    kernel = (lambda p, q: (p @ q.T / p.shape[1] + 1) ** 3)
    off = ~np.eye(len(row), dtype=bool)
    direct = kernel(x, x)[off].mean() + kernel(y, y)[off].mean() - 2 * kernel(x, y).mean()
    assert statistic.values(row[None])[0] == pytest.approx(direct, rel=1e-9)
    assert len(set(row)) < len(row)                   # the resample does repeat images


def test_kid_subset_rule_on_resampled_sets():
    rng = np.random.default_rng(5)
    generated = inception_like(rng, (15, 3, 16))       # patch-KID: 45 crops per side, subsets of 20
    reference = inception_like(rng, (15, 3, 16), offset=0.6)
    settings = dict(subsets=6, subset_size=20, seed=2)
    indices = resample_indices(15, 6, seed=0)
    paired = KIDStatistic(generated, reference, paired=True, **settings)
    slow = [metric_kid(materialised(generated, r), materialised(reference, r), **settings) for r in indices]
    assert paired.values(indices) == pytest.approx(slow, rel=1e-9, abs=1e-12)
    folder = inception_like(rng, (17, 16), offset=0.6)   # a fixed folder of another size: subsets of 15
    fixed = KIDStatistic(generated[:, 0], folder, paired=False, subsets=5, seed=1)
    slow = [metric_kid(materialised(generated[:, 0], r), folder, subsets=5, seed=1) for r in indices]
    assert fixed.values(indices) == pytest.approx(slow, rel=1e-9, abs=1e-12)


def test_intervals_of_set_metrics_are_quantiles_of_the_recomputed_values():
    rng = np.random.default_rng(6)
    generated, reference = inception_like(rng, (16, 12)), inception_like(rng, (16, 12), offset=0.7)
    indices = resample_indices(16, 40, seed=5)
    slow = np.array([metric_fid(materialised(generated, r), materialised(reference, r)) for r in indices])
    interval = bootstrap_interval(FrechetStatistic(generated, reference, paired=True), indices)
    assert (interval.low, interval.high) == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])), rel=1e-6)
    assert interval.estimate == pytest.approx(metric_fid(generated, reference), rel=1e-6)
    # FID on a resampled set (fewer distinct images) is biased upwards: here every resample lies above the
    # estimate, so the percentile interval excludes it and BCa's bias correction is undefined
    assert (slow > interval.estimate).all() and interval.low > interval.estimate
    assert not bootstrap_interval(FrechetStatistic(generated, reference, paired=True), indices, method="bca").defined
