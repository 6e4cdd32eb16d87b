"""FID, KID and their patch variants on resampled image sets: the bootstrap statistics of the FID family.

Each value is the metric of metrics/fid.py or metrics/kid.py on the materialised resampled set: the
generated images of the resample (an image drawn k times brings its features k times; with patches
it brings all its P crops, k times), against the reference side, which is either resampled with the
same draws (``paired=True``: a dataset's references, one per prompt) or held fixed (a folder of real
images or saved reference statistics; docs/metrics-holistic.md, "Intervals", says why).

FID without d x d matrices. A resampled set weights each feature row by its count w (total M), so
its covariance is S = A^T A with A = diag(sqrt w) (Y - 1 ybar^T) / sqrt(M - 1), an (R x d) matrix of
rank < R. For any such pair, Tr((S1 S2)^1/2) is the sum of the singular values (nuclear norm) of the
R1 x R2 matrix A1 A2^T, and A1 A2^T is the cross-Gram matrix G = Y1 Y2^T of the features, computed
once, centred by two rank-one corrections and scaled by the weights; rows and columns of weight 0
drop out (about 37 % of the images of a resample). The mean and trace terms are weighted sums. A
fixed reference is folded into G once: G = Y1 Z^T / sqrt(m - 1) with Z its centred features, or,
when only a mean and covariance are known, any F with F F^T = Y1 S2 Y1^T (from the eigenvalues of
that N x N matrix). Everything is float64; features are taken as the metrics take them (FID: float64
as given; KID: rounded to float32 first).

KID on a set with repeated images is the unbiased MMD of kid.py on the materialised rows: two copies
of one image are two distinct samples, so their kernel value counts off the diagonal. With counts c
per row: sum over ordered pairs of distinct positions = c^T K c - c . diag(K). The kernel matrices
are computed once; KID's subset rule (kid.subset_picks) is applied to the materialised set, whose
row order is the resample's draw order.
"""
from __future__ import annotations

import math

import numpy as np

from aesthetic4k_metrics.bootstrap import Statistic, resample_counts

_CHUNK = 250                  # resamples per block of dense products: memory stays bounded at any B
_BATCH_ELEMENTS = 1 << 22     # matrix entries per batch of SVDs (32 MB of float64)


class ImageFeatures:
    """Feature rows grouped by image: (N, d) one row each, (N, P, d) P crops each, or a list of (P_i, d)."""

    def __init__(self, features, dtype=np.float64):
        if isinstance(features, (list, tuple)):
            parts = [np.asarray(part) for part in features]
            parts = [part.reshape(-1, part.shape[-1]) if part.ndim else part for part in parts]
            if not parts or any(part.ndim != 2 for part in parts) or len({p.shape[1] for p in parts}) != 1:
                raise ValueError("per-image features must be (rows, d) arrays with one d")
            lengths = np.array([part.shape[0] for part in parts], np.int64)
            rows = np.concatenate(parts)
        else:
            array = np.asarray(features)
            if array.ndim == 2:
                array = array[:, None, :]
            if array.ndim != 3:
                raise ValueError(f"expected (N, d) or (N, P, d) features, got shape {array.shape}")
            lengths = np.full(array.shape[0], array.shape[1], np.int64)
            rows = array.reshape(-1, array.shape[2])
        if dtype == np.float32:
            rows = rows.astype(np.float32)      # what KID keeps, before its float64 arithmetic
        self.rows = rows.astype(np.float64)
        self.lengths = lengths
        self.n = lengths.size
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.owner = np.repeat(np.arange(self.n, dtype=np.int64), lengths)

    @property
    def dim(self) -> int:
        return self.rows.shape[1]

    def materialised(self, images: np.ndarray) -> np.ndarray:
        """Row numbers of the resampled set, in draw order: each drawn image's rows, in their order."""
        lengths = self.lengths[images]
        firsts = np.repeat(self.starts[images], lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return firsts + offsets


def _same_images(generated: ImageFeatures, reference: ImageFeatures, paired: bool) -> None:
    if generated.dim != reference.dim:
        raise ValueError(f"generated features are {generated.dim}-d, reference features {reference.dim}-d")
    if paired and reference.n != generated.n:
        raise ValueError(f"paired references need one per generated image: {reference.n} for {generated.n}")
    if generated.n < 1 or reference.rows.shape[0] < 2:
        raise ValueError("the FID family needs generated images and at least 2 reference samples")


def _row_weights(indices: np.ndarray, features: ImageFeatures) -> np.ndarray:
    """(B, R) float64: each feature row weighted by how often its image is in each resample."""
    return resample_counts(indices, features.n)[:, features.owner].astype(np.float64)


class FrechetStatistic(Statistic):
    """FID (patch-FID with per-image crops) of each resampled set; see the module docstring.

    ``generated``/``reference``: features as ImageFeatures takes them. ``paired=True``: the i-th
    reference image belongs to the i-th generated one and is resampled with it; ``paired=False``: the
    reference set is held fixed. :meth:`from_moments`: a fixed reference known by mean and covariance.
    """

    def __init__(self, generated, reference, *, paired: bool = True):
        self._take_generated(generated, paired)
        ref = ImageFeatures(reference)
        _same_images(self._gen, ref, self.paired)
        if self.paired:
            self._ref = ref
            self._ref_shift = ref.rows.mean(axis=0)
            ref_centred = ref.rows - self._ref_shift
            self._ref_centred = ref_centred
            self._ref_squares = (ref_centred ** 2).sum(axis=1)
            self._cross = self._centred @ ref_centred.T
        else:
            count = ref.rows.shape[0]
            mean = ref.rows.mean(axis=0)
            centred = ref.rows - mean
            self._fix_reference(mean, float((centred ** 2).sum()) / (count - 1),
                                self._centred @ centred.T / math.sqrt(count - 1))

    @classmethod
    def from_moments(cls, generated, mean, covariance) -> "FrechetStatistic":
        """A fixed reference given only as (mean, covariance), e.g. torchmetrics' or pytorch-fid's statistics."""
        statistic = cls.__new__(cls)
        statistic._take_generated(generated, paired=False)
        mean, covariance = np.asarray(mean, np.float64), np.asarray(covariance, np.float64)
        if mean.shape != (statistic._gen.dim,) or covariance.shape != (statistic._gen.dim,) * 2:
            raise ValueError(f"expected a {statistic._gen.dim}-d mean and covariance, "
                             f"got {mean.shape} and {covariance.shape}")
        projected = statistic._centred @ ((covariance + covariance.T) / 2) @ statistic._centred.T
        values, vectors = np.linalg.eigh((projected + projected.T) / 2)
        statistic._fix_reference(mean, float(np.trace(covariance)), vectors * np.sqrt(np.clip(values, 0, None)))
        return statistic

    def _take_generated(self, generated, paired: bool) -> None:
        self._gen = ImageFeatures(generated)
        self.n = self._gen.n
        self._shift = self._gen.rows.mean(axis=0)            # centring here keeps the Gram entries small
        self._centred = self._gen.rows - self._shift
        self._squares = (self._centred ** 2).sum(axis=1)
        self.paired = bool(paired)

    def _fix_reference(self, mean: np.ndarray, trace: float, factor: np.ndarray) -> None:
        """Fixed side: its mean, Tr(S2), and F with F F^T = Y1 S2 Y1^T (cut to at most R1 columns)."""
        if factor.shape[1] > factor.shape[0]:
            factor = np.linalg.qr(factor.T, mode="r").T      # same F F^T, R1 x R1
        self._ref_mean, self._ref_trace, self._factor = mean, trace, factor

    def values(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        return np.concatenate([self._block(indices[start:start + _CHUNK])
                               for start in range(0, indices.shape[0], _CHUNK)]) if len(indices) else np.zeros(0)

    def _block(self, indices: np.ndarray) -> np.ndarray:
        weights = _row_weights(indices, self._gen)
        total = weights.sum(axis=1)
        mean = weights @ self._centred / total[:, None]
        trace = (weights @ self._squares - total * (mean ** 2).sum(axis=1)) / (total - 1)
        if self.paired:
            ref_weights = _row_weights(indices, self._ref)
            ref_total = ref_weights.sum(axis=1)
            ref_mean = ref_weights @ self._ref_centred / ref_total[:, None]
            ref_trace = (ref_weights @ self._ref_squares - ref_total * (ref_mean ** 2).sum(axis=1)) / (ref_total - 1)
            gap = mean - ref_mean + (self._shift - self._ref_shift)
            usable = np.flatnonzero((total >= 2) & (ref_total >= 2))    # the metric needs 2 samples per side
            scale = np.sqrt((total - 1) * (ref_total - 1))
            shapes = list(zip(np.count_nonzero(weights[usable], axis=1), np.count_nonzero(ref_weights[usable], axis=1)))
            matrix = (lambda i: self._paired_matrix(weights[usable[i]], total[usable[i]], ref_weights[usable[i]],
                                                    ref_total[usable[i]]))
        else:
            ref_trace = self._ref_trace
            gap = mean + (self._shift - self._ref_mean)
            usable = np.flatnonzero(total >= 2)
            scale = np.sqrt(total - 1)
            shapes = [(rows, self._factor.shape[1]) for rows in np.count_nonzero(weights[usable], axis=1)]
            matrix = (lambda i: self._fixed_matrix(weights[usable[i]], total[usable[i]]))
        roots = np.full(len(indices), np.nan)
        roots[usable] = nuclear_norms(shapes, matrix) / scale[usable]
        return (gap ** 2).sum(axis=1) + trace + ref_trace - 2 * roots

    def _paired_matrix(self, weights, total, ref_weights, ref_total) -> np.ndarray:
        """A1 A2^T up to 1 / sqrt((M1 - 1)(M2 - 1)): the cross-Gram rows and columns in the resample,
        centred on both sides by the weighted means, each row and column scaled by sqrt(its weight)."""
        rows, columns = np.flatnonzero(weights), np.flatnonzero(ref_weights)
        gram = self._cross[np.ix_(rows, columns)]
        row_share, column_share = weights[rows] / total, ref_weights[columns] / ref_total
        row_mean = row_share @ gram
        column_mean = gram @ column_share
        centred = gram - row_mean[None, :] - column_mean[:, None] + row_share @ column_mean
        return centred * np.sqrt(weights[rows])[:, None] * np.sqrt(ref_weights[columns])[None, :]

    def _fixed_matrix(self, weights, total) -> np.ndarray:
        """A1 F up to 1 / sqrt(M1 - 1), F the fixed reference's factor (see _fix_reference)."""
        rows = np.flatnonzero(weights)
        factor = self._factor[rows]
        return (factor - (weights[rows] / total) @ factor) * np.sqrt(weights[rows])[:, None]


def nuclear_norms(shapes: list, build) -> np.ndarray:
    """The sum of the singular values of each matrix ``build(i)`` of ``shapes[i]`` (LAPACK's divide and
    conquer SVD, through torch).

    Matrices of one shape go through ``torch.linalg.svdvals`` in batches of at most _BATCH_ELEMENTS
    entries, built where they are used; the batches are spread over the usable CPUs with one torch
    thread each: small SVDs on several BLAS threads mostly wait for each other (and collapse on a busy
    machine), and one thread each keeps the results independent of the machine's core count.
    """
    import torch

    from aesthetic4k_metrics.parallel import ordered_map

    out = np.empty(len(shapes))
    groups: dict = {}
    for position, shape in enumerate(shapes):
        groups.setdefault((int(shape[0]), int(shape[1])), []).append(position)
    batches = []
    for shape, members in sorted(groups.items()):
        per_batch = max(1, _BATCH_ELEMENTS // max(1, shape[0] * shape[1]))
        batches += [members[i:i + per_batch] for i in range(0, len(members), per_batch)]

    def singular_value_sums(members):
        stack = torch.from_numpy(np.stack([build(m) for m in members]))
        return torch.linalg.svdvals(stack).sum(dim=-1).numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for members, sums in zip(batches, ordered_map(singular_value_sums, batches)):
            out[members] = sums
    finally:
        torch.set_num_threads(threads)
    return out


class KIDStatistic(Statistic):
    """KID (patch-KID with per-image crops) of each resampled set: kid.KID's value, subset rule included.

    ``subsets``, ``subset_size`` and ``seed`` are the metric's own (KID.subsets, .subset_size, .seed).
    """

    def __init__(self, generated, reference, *, paired: bool = True, subsets: int = 100,
                 subset_size: int = 1000, seed: int = 0):
        import torch

        from aesthetic4k_metrics.kid import polynomial_kernel

        self._gen = ImageFeatures(generated, np.float32)
        self._ref = ImageFeatures(reference, np.float32)
        _same_images(self._gen, self._ref, paired)
        self.n, self.paired = self._gen.n, bool(paired)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        fake, real = torch.from_numpy(self._gen.rows), torch.from_numpy(self._ref.rows)
        self._k_fake = polynomial_kernel(fake, fake).numpy()
        self._k_real = polynomial_kernel(real, real).numpy()
        self._k_cross = polynomial_kernel(real, fake).numpy()          # real rows x fake rows
        self._pair_weights: dict = {}

    def _mmd(self, real_counts: np.ndarray, fake_counts: np.ndarray) -> np.ndarray:
        """Unbiased MMD^2 of whole sets given as row counts ((B, R_real) and (B, R_fake))."""
        m, n = real_counts.sum(axis=1), fake_counts.sum(axis=1)
        within_real = ((real_counts @ self._k_real) * real_counts).sum(axis=1) - real_counts @ np.diag(self._k_real)
        within_fake = ((fake_counts @ self._k_fake) * fake_counts).sum(axis=1) - fake_counts @ np.diag(self._k_fake)
        cross = ((real_counts @ self._k_cross) * fake_counts).sum(axis=1)
        return within_real / (m * (m - 1)) + within_fake / (n * (n - 1)) - 2 * cross / (m * n)

    def _subset_weights(self, n_real: int, n_fake: int):
        """kid.subset_picks for sets of these sizes, as pair weights over positions of the materialised sets.

        Every subset has the same size, so the mean over subsets of their MMDs is one weighted sum of
        kernel values: position pair (a, b) weighs the number of subsets holding both (distinct
        positions only within a side). None when KID takes the whole sets.
        """
        from aesthetic4k_metrics.kid import subset_picks

        key = (n_real, n_fake)
        if key not in self._pair_weights:
            picks = subset_picks(n_real, n_fake, self.subset_size, self.subsets, self.seed)
            if picks is None:
                self._pair_weights[key] = None
            else:
                real = np.zeros((len(picks), n_real))
                fake = np.zeros((len(picks), n_fake))
                for s, (pick_real, pick_fake) in enumerate(picks):
                    real[s, pick_real.numpy()] = 1.0
                    fake[s, pick_fake.numpy()] = 1.0
                within_real, within_fake = real.T @ real, fake.T @ fake
                np.fill_diagonal(within_real, 0.0)
                np.fill_diagonal(within_fake, 0.0)
                size = len(picks[0][0])
                self._pair_weights[key] = (within_real / (len(picks) * size * (size - 1)),
                                           within_fake / (len(picks) * size * (size - 1)),
                                           real.T @ fake * (2.0 / (len(picks) * size * size)))
        return self._pair_weights[key]

    def values(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        out = np.empty(indices.shape[0])
        fixed_real = np.arange(self._ref.rows.shape[0])
        for start in range(0, indices.shape[0], _CHUNK):
            block = indices[start:start + _CHUNK]
            fake_counts = _row_weights(block, self._gen)
            real_counts = (_row_weights(block, self._ref) if self.paired
                           else np.ones((block.shape[0], fixed_real.size)))
            whole = []                                      # resamples KID takes in one estimate
            for b, draws in enumerate(block):
                n_real, n_fake = int(real_counts[b].sum()), int(fake_counts[b].sum())
                if min(n_real, n_fake, self.subset_size) < 2:
                    out[start + b] = math.nan
                    continue
                weights = self._subset_weights(n_real, n_fake)
                if weights is None:
                    whole.append(b)
                    continue
                real_rows = self._ref.materialised(draws) if self.paired else fixed_real
                fake_rows = self._gen.materialised(draws)
                within_real, within_fake, cross = weights
                out[start + b] = ((self._k_real[np.ix_(real_rows, real_rows)] * within_real).sum()
                                  + (self._k_fake[np.ix_(fake_rows, fake_rows)] * within_fake).sum()
                                  - (self._k_cross[np.ix_(real_rows, fake_rows)] * cross).sum())
            if whole:
                out[start + np.array(whole)] = self._mmd(real_counts[whole], fake_counts[whole])
        return out
