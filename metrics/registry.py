"""What every metric is: its results.csv column, direction and inputs (importable without torch).

The leaderboard, `a4k-check` and `a4k-eval --list-metrics` read this table; the metric
implementations live in the modules named by ``module``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str                 # name used in --metrics and as the results.csv column
    title: str                # human-readable name
    higher_is_better: bool
    needs: tuple = ()         # extra inputs beyond the generated image: "reference", "prompt"
    weights: tuple = ()       # weight files it loads (names known to metrics.weights)
    published: bool = False   # one of the five metrics of the Aesthetic-4K paper
    module: str = ""
    description: str = ""

    @property
    def better(self) -> str:
        """ "higher" or "lower": the word every table and message uses for the direction."""
        return "higher" if self.higher_is_better else "lower"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def label(self) -> str:
        """Title with its direction arrow, e.g. "FID ↓"."""
        return f"{self.title} {self.arrow}"


METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("glcm_score", "GLCM Score", True, published=True, module="metrics.glcm",
               description="mean over 64x64 patches of the entropy of distinct GLCM values (PROTOCOL.md s3)"),
    MetricInfo("compression_ratio", "Compression Ratio", False, published=True, module="metrics.compression",
               description="raw RGB bytes / JPEG q95 bytes, ratio of sums (PROTOCOL.md s4)"),
    MetricInfo("fid", "FID", False, needs=("reference",), weights=("inception",), published=True,
               module="metrics.fid", description="Frechet Inception Distance, paper protocol (PROTOCOL.md s5)"),
    MetricInfo("clip_score", "CLIPScore", True, needs=("prompt",), weights=("clip-vit-b-16",), published=True,
               module="metrics.clip_score", description="100 * max(cos(image, text), 0), mean over images (s6)"),
    MetricInfo("aesthetics", "Aesthetics", True, weights=("clip-vit-l-14", "aesthetic-head"), published=True,
               module="metrics.aesthetics", description="LAION improved aesthetic predictor v2 (s7)"),
    MetricInfo("kid", "KID", False, needs=("reference",), weights=("inception",), module="metrics.kid",
               description="Kernel Inception Distance (unbiased MMD, cubic polynomial kernel)"),
    MetricInfo("patch_fid", "patch-FID", False, needs=("reference",), weights=("inception",), module="metrics.fid",
               description="FID over seeded 299x299 crops at native resolution"),
    MetricInfo("patch_kid", "patch-KID", False, needs=("reference",), weights=("inception",), module="metrics.kid",
               description="KID over the same crops as patch-FID"),
]}

PUBLISHED = [name for name, info in METRICS.items() if info.published]


def parse_metric_list(text: str) -> list[str]:
    """Split a comma list of metric names, rejecting unknown ones with the list of known names."""
    from metrics.errors import UserError

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    if not names:
        raise UserError("--metrics is empty; available: " + ", ".join(METRICS))
    return list(dict.fromkeys(names))
