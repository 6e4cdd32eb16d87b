"""FID and patch-FID as torchmetrics ``Metric`` classes (protocol s5).

States are running sums (feature sum and sum of outer products, float64), so memory does not
grow with the number of images and states sum across processes. Each ``update`` adds its batch
in one step, so the same batches in the same order give the same bits. The Frechet distance is
computed in float64 from the two Gaussians.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from aesthetic4k_metrics.defaults import PATCH_COUNT
from aesthetic4k_metrics.inception_features import InceptionMetric
from aesthetic4k_metrics.registry import METRICS


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), in float64.

    Tr((S1 S2)^1/2) is the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2, a
    symmetric positive semi-definite matrix with the same spectrum as S1 S2 (no complex parts).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def mean_and_covariance(total: torch.Tensor, outer: torch.Tensor, count: int):
    """Mean and unbiased covariance (float64 numpy) from running sums."""
    total = total.double().cpu().numpy()
    outer = outer.double().cpu().numpy()
    mean = total / count
    cov = (outer - count * np.outer(mean, mean)) / (count - 1)
    return mean, cov


class FID(InceptionMetric):
    """Frechet Inception Distance between real and generated images.

    ``update(images, real=True|False)`` with images in any form of metrics/pixel_input.py (any
    size; each is brought to ``size x size`` then to 299 by ``protocol``), or
    ``update(features=..., real=...)`` with features from ``extract``.
    """

    name = "fid"
    higher_is_better = METRICS["fid"].higher_is_better
    plot_lower_bound = 0.0

    def _add_feature_states(self) -> None:
        for side in ("real", "fake"):
            dim = self.num_features
            self.add_state(f"{side}_sum", torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, features: torch.Tensor, real: bool) -> None:
        side = "real" if real else "fake"
        features = features.double()
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + features.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + features.T @ features)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + features.shape[0])

    def counts(self) -> tuple[int, int]:
        return int(self.real_count), int(self.fake_count)

    def compute(self) -> torch.Tensor:
        n_real, n_fake = self.counts()
        if n_real < 2 or n_fake < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 real and 2 generated samples, "
                             f"got {n_real} and {n_fake}")
        mu1, sigma1 = mean_and_covariance(self.real_sum, self.real_outer, n_real)
        mu2, sigma2 = mean_and_covariance(self.fake_sum, self.fake_outer, n_fake)
        return torch.tensor(frechet_distance(mu1, sigma1, mu2, sigma2), dtype=torch.float64)

    def summary(self) -> dict:
        """The results.csv cells (NaN when there are too few samples, counted over every process)."""
        with self.sync_context():     # a collective: every process decides on the same counts
            enough = min(self.counts()) >= 2
        return {self.name: float(self.compute()) if enough else math.nan}


class PatchFID(FID):
    """FID over ``patch_count`` seeded 299 x 299 crops per image at ``size x size`` (metrics/patches.py)."""

    name = "patch_fid"
    default_patch_count = PATCH_COUNT


__all__ = ["FID", "PatchFID", "frechet_distance", "mean_and_covariance"]
