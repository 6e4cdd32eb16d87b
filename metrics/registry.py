"""Every metric, declared once: name, direction, what it reads and needs, its result columns, its class.

Everything else is derived from this table: the results.csv columns, ``a4k-eval --list-metrics``,
the leaderboard and ``a4k-check`` directions, which metrics a run can score, how a run feeds
them. Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from importlib import import_module
from typing import Optional

from aesthetic4k_metrics import weights
from aesthetic4k_metrics.errors import MetricUnavailable, UserError, did_you_mean

FILE, PIXELS = "file", "pixels"       # what a metric reads: the image file, or decoded pixels through a network
# a bootstrap's recomputation on a resampled set: mean of per-image values, ratio of byte sums, Frechet
# distance or kernel MMD of the resampled features (aesthetic4k_metrics.bootstrap, bootstrap_distances)
RESAMPLED = ("mean", "ratio", "frechet", "kernel")


@dataclass(frozen=True)
class MetricInfo:
    name: str                 # name used in --metrics; also its first results.csv column
    title: str                # human-readable name
    higher_is_better: bool
    implementation: str       # "module:Class" of the metric class
    columns: tuple            # results.csv columns it fills, its value first
    per_image: tuple = ()     # per-image columns it gives (the per-image CSV, the report)
    reads: str = PIXELS       # FILE: computed from the image file; PIXELS: decoded pixels through a network
    needs: tuple = ()         # inputs beyond the generated image: "reference" (paired images), "prompt"
    distribution: bool = False  # compares two image distributions (FID-like): small sets mostly measure their size
    weights: tuple = ()       # weight files it loads: names known to aesthetic4k_metrics.weights, or "clip:<settings field>"
    published: bool = False   # one of the five metrics of the Aesthetic-4K paper
    resampled: str = "mean"   # how a bootstrap recomputes it on a resampled image set (RESAMPLED; plugins: "mean")
    description: str = ""
    plugin: str = ""          # a plugin's spec ("module:Class" or its entry-point name); "" for a built-in
    version: str = ""         # a plugin's own version, recorded with its numbers
    factory: object = field(default=None, compare=False, repr=False)   # a plugin's from_settings() holder

    def declaration(self) -> dict:
        """A plugin as a results row records it (settings ``metric_plugins``): enough for a4k-check, the
        leaderboard and the report to show and rank its column without importing its code."""
        return {"spec": self.plugin, "title": self.title, "better": self.better, "version": self.version,
                "description": self.description}

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

    def weight_names(self, settings=None) -> list[str]:
        """The weight files this metric loads with ``settings`` (aesthetic4k_metrics.settings.MetricSettings)."""
        from aesthetic4k_metrics.settings import MetricSettings

        settings = settings or MetricSettings()
        return [weights.clip_weight_name(getattr(settings, w[5:])) if w.startswith("clip:") else w
                for w in self.weights]

    def check_installed(self) -> None:
        """A MetricUnavailable naming the extra to install when a package this metric imports is missing."""
        if self.reads == FILE:
            return      # the fine-detail metrics are the core
        from aesthetic4k_metrics.extras import require

        if self.plugin:
            require(self.name, "metrics", ("torch",))    # a run feeds a plugin its pixels through torch
            return

        clip = ("open_clip",) if any(w.startswith("clip:") for w in self.weights) else ()
        require(self.name, "metrics", ("torch", "torchvision", "torchmetrics", *clip))

    def load_class(self):
        """The metric class (importing it may import torch): anything with ``from_settings(settings)``."""
        if self.factory is not None:
            return self.factory
        if self.plugin:
            raise MetricUnavailable(f"{self.name} is a plugin metric known from a results file only: "
                                    f"name it as {self.plugin} to run it", "plugin not loaded")
        module, _, attribute = self.implementation.partition(":")
        return getattr(import_module(module), attribute)


_INCEPTION = ("inception",)

METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("glcm_score", "GLCM Score", True, "aesthetic4k_metrics.detail:GLCMScore", ("glcm_score",), ("glcm_score",),
               reads=FILE, published=True,
               description="mean over 64x64 patches of the entropy of distinct GLCM values (protocol s3)"),
    MetricInfo("compression_ratio", "Compression Ratio", False, "aesthetic4k_metrics.detail:CompressionRatio",
               ("compression_ratio",), ("jpeg_bytes",), reads=FILE, published=True, resampled="ratio",
               description="raw RGB bytes / JPEG q95 bytes, ratio of sums (protocol s4)"),
    MetricInfo("fid", "FID", False, "aesthetic4k_metrics.fid:FID", ("fid",), needs=("reference",), distribution=True,
               weights=_INCEPTION, published=True, resampled="frechet", description="Frechet Inception Distance, paper protocol (protocol s5)"),
    MetricInfo("clip_score", "CLIPScore", True, "aesthetic4k_metrics.clip_score:CLIPScore", ("clip_score", "clip_truncated"),
               ("clip_score", "clip_truncated"), needs=("prompt",), weights=("clip:clip_model",), published=True,
               description="100 * max(cos(image, text), 0), mean over images (protocol s6)"),
    MetricInfo("aesthetics", "Aesthetics", True, "aesthetic4k_metrics.aesthetics:Aesthetics", ("aesthetics",), ("aesthetics",),
               weights=("clip:aesthetics_model", "aesthetic-head"), published=True,
               description="LAION improved aesthetic predictor v2 (protocol s7)"),
    MetricInfo("kid", "KID", False, "aesthetic4k_metrics.kid:KID", ("kid", "kid_std"), needs=("reference",), distribution=True,
               weights=_INCEPTION, resampled="kernel", description="Kernel Inception Distance (unbiased MMD, cubic polynomial kernel)"),
    MetricInfo("patch_fid", "patch-FID", False, "aesthetic4k_metrics.fid:PatchFID", ("patch_fid",), needs=("reference",),
               distribution=True, weights=_INCEPTION, resampled="frechet", description="FID over seeded 299x299 crops at native resolution"),
    MetricInfo("patch_kid", "patch-KID", False, "aesthetic4k_metrics.kid:PatchKID", ("patch_kid",), needs=("reference",),
               distribution=True, weights=_INCEPTION, resampled="kernel", description="KID over the same crops as patch-FID"),
]}

PUBLISHED = [name for name, info in METRICS.items() if info.published]


def result_columns() -> list[str]:
    """Every results.csv column a metric fills: the published metrics' values first, then the rest."""
    first = [METRICS[name].name for name in PUBLISHED]
    rest = [c for info in METRICS.values() for c in info.columns if c not in first]
    return first + list(dict.fromkeys(rest))


def parse_metric_list(text: str) -> list[str]:
    """Split a comma list of metric names, rejecting unknown ones with the list of known names."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("the metric list is empty; available: " + ", ".join(METRICS))
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}{did_you_mean(unknown[0], METRICS)} "
                        f"(available: {', '.join(METRICS)})")
    return list(dict.fromkeys(names))


def weight_sources(overrides: Optional[dict] = None, allow_download: Optional[bool] = None,
                   settings=None) -> list[dict]:
    """For each metric and weight, where the file would come from (``source``) or why not (``reason``).

    Checks local files only: it never downloads and never imports torch.
    """
    overrides = overrides or {}
    rows = []
    for metric in METRICS.values():
        for weight in metric.weight_names(settings):
            row = {"metric": metric.name, "weight": weight}
            try:
                spec = weights.spec_for(weight)
                if overrides.get(weight) or os.environ.get(spec.env) or any(
                        p.is_file() for p, _ in weights.local_candidates(spec)):
                    resolved = weights.resolve(weight, overrides.get(weight), allow_download=False)
                    row["source"] = resolved.source
                    row["path"] = str(resolved.path)
                elif weights.would_download(weight, allow_download):
                    row["source"] = weights.would_download(weight, allow_download)
                else:
                    weights.resolve(weight, None, allow_download=False)
            except UserError as exc:
                row["reason"] = str(exc)
            rows.append(row)
    return rows
