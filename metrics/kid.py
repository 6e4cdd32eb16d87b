"""KID and patch-KID as torchmetrics ``Metric`` classes.

Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of the squared MMD
between real and generated features with the cubic polynomial kernel
k(x, y) = (x . y / d + 1)^3, averaged over random subsets. Features (not images) are kept;
subset sampling is seeded, so results are reproducible. With fewer samples than
``subset_size`` the subsets hold all samples (reported by ``effective_subset_size``), and for a
single subset the standard deviation is 0: on small sets (e.g. 195 images) KID is one estimate.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from aesthetic4k_metrics.defaults import FID_PROTOCOL, KID_SUBSET_SIZE, KID_SUBSETS, PATCH_COUNT
from aesthetic4k_metrics.inception import FEATURE_DIM
from aesthetic4k_metrics.inception_features import DEFAULT_MAX_PIXELS, InceptionMetric
from aesthetic4k_metrics.registry import METRICS


class KIDResult(NamedTuple):
    """What ``KID.compute()`` returns: the mean unbiased MMD^2 over the subsets and its spread (1/N)."""

    mean: torch.Tensor
    std: torch.Tensor

KERNEL = "(x.y/d+1)^3, unbiased MMD^2"


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + coef) ** degree


def subset_picks(n_real: int, n_fake: int, subset_size: int, subsets: int, seed: int):
    """KID's subset rule: the (real rows, fake rows) of each subset, or None when every subset would be
    the whole of both sets (then KID is one estimate on all samples).

    Subsets take ``min(subset_size, n_real, n_fake)`` rows of each side, drawn by ``torch.randperm``
    from one generator seeded with ``seed``, real then fake, subset after subset.
    """
    size = min(subset_size, n_real, n_fake)
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 generated samples, got {n_real} and {n_fake}")
    if size == n_real == n_fake:
        return None
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randperm(n_real, generator=generator)[:size], torch.randperm(n_fake, generator=generator)[:size])
            for _ in range(subsets)]


def unbiased_mmd2(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Unbiased squared MMD: within-set kernel means exclude the diagonal."""
    m, n = real.shape[0], fake.shape[0]
    k_rr = polynomial_kernel(real, real)
    k_ff = polynomial_kernel(fake, fake)
    k_rf = polynomial_kernel(real, fake)
    within_real = (k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1))
    within_fake = (k_ff.sum() - k_ff.diagonal().sum()) / (n * (n - 1))
    return within_real + within_fake - 2 * k_rf.mean()


class KID(InceptionMetric):
    """Kernel Inception Distance; ``compute()`` returns (mean, std) over subsets (std with 1/N)."""

    name = "kid"
    higher_is_better = METRICS["kid"].higher_is_better
    plot_lower_bound = 0.0

    def __init__(self, feature: Union[int, nn.Module, str, Path] = FEATURE_DIM, size: Optional[int] = None,
                 protocol: str = FID_PROTOCOL, batch_size: int = 16, patch_count: Optional[int] = None,
                 patch_seed: int = 0, normalize: bool = False, reset_real_features: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, workers: Optional[int] = None, subsets: int = KID_SUBSETS,
                 subset_size: int = KID_SUBSET_SIZE, seed: int = 0, **kwargs):
        """FID's arguments (InceptionMetric), then the subsets: ``subsets`` draws of ``subset_size``
        images of each side (fewer when there are fewer images), drawn with ``seed``."""
        if subsets < 1 or subset_size < 2:
            raise ValueError("KID needs subsets >= 1 and subset_size >= 2")
        self.subsets = int(subsets)
        self.subset_size = int(subset_size)
        self.seed = int(seed)
        super().__init__(feature, size=size, protocol=protocol, batch_size=batch_size, patch_count=patch_count,
                         patch_seed=patch_seed, normalize=normalize, reset_real_features=reset_real_features,
                         max_pixels=max_pixels, workers=workers, **kwargs)

    def _add_feature_states(self) -> None:
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    @classmethod
    def from_settings(cls, settings, **extra):
        return super().from_settings(settings, subsets=settings.kid_subsets, subset_size=settings.kid_subset_size,
                                     seed=settings.patch_seed, **extra)

    def _accumulate(self, features: torch.Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features.float())

    def _gathered(self, state) -> torch.Tensor:
        if isinstance(state, torch.Tensor):
            return state
        return torch.cat(state) if state else torch.zeros(0, self.num_features)

    def effective_subset_size(self) -> int:
        n_real = self._gathered(self.real_features).shape[0]
        n_fake = self._gathered(self.fake_features).shape[0]
        return min(self.subset_size, n_real, n_fake)

    def compute(self) -> "KIDResult":
        """``KIDResult(mean, std)`` over the subsets: a (mean, std) pair, as torchmetrics' KID returns."""
        real = self._gathered(self.real_features).double()
        fake = self._gathered(self.fake_features).double()
        picks = subset_picks(real.shape[0], fake.shape[0], self.subset_size, self.subsets, self.seed)
        if picks is None:       # every subset would be the whole set: one estimate, no spread
            return KIDResult(unbiased_mmd2(real, fake), torch.zeros((), dtype=torch.float64))
        scores = torch.stack([unbiased_mmd2(real[pick_real.to(real.device)], fake[pick_fake.to(fake.device)])
                              for pick_real, pick_fake in picks])
        return KIDResult(scores.mean(), scores.std(unbiased=False))

    def summary(self) -> dict:
        """The results.csv cells: ``kid`` and ``kid_std`` (patch-KID: its mean only); NaN with too few samples."""
        with self.sync_context():     # a collective: every process decides on the same counts
            enough = self.effective_subset_size() >= 2
        mean, std = self.compute() if enough else (math.nan, math.nan)
        cells = {self.name: float(mean), f"{self.name}_std": float(std)}
        return {column: cells[column] for column in METRICS[self.name].columns}

    def provenance(self) -> dict:
        out = super().provenance()
        used = self.effective_subset_size()
        out.update(kid_kernel=KERNEL, kid_subsets=self.subsets, kid_subset_size=used, kid_seed=self.seed)
        if used < self.subset_size:
            out["kid_note"] = (f"fewer samples than subset size {self.subset_size}: "
                               f"subsets of {used} (all samples), std not informative")
        return out


class PatchKID(KID):
    """KID over the same seeded 299 x 299 crops as PatchFID."""

    name = "patch_kid"
    default_patch_count = PATCH_COUNT
