"""GLCM Score and Compression Ratio for a run: values come from the worker pool's ``Item.detail``."""
from __future__ import annotations

from aesthetic4k.scoring import Scorer, ScoringOptions


class GLCMScorer(Scorer):
    name = "glcm_score"
    columns = ("glcm_score",)
    needs_pixels = False

    def __init__(self, options: ScoringOptions):
        from metrics.detail import GLCMScore

        self.metric = GLCMScore()

    def add(self, items):
        self.metric.update(scores=[item.detail["glcm_score"] for item in items])
        return [{} for _ in items]  # the per-image value is already in the run's per-image row

    def result(self):
        return {"glcm_score": float(self.metric.compute())}

    def settings(self):
        return {"glcm": "entropy of distinct values, 64 levels, 64x64 patches, d=1-4, 4 angles, OpenCV grey"}


class CompressionScorer(Scorer):
    name = "compression_ratio"
    columns = ("compression_ratio",)
    needs_pixels = False

    def __init__(self, options: ScoringOptions):
        from metrics.detail import CompressionRatio

        self.metric = CompressionRatio(mode=options.cr_mode)

    def add(self, items):
        raw = [item.detail["width"] * item.detail["height"] * 3 for item in items]
        self.metric.update(raw_bytes=raw, compressed_bytes=[item.detail["jpeg_bytes"] for item in items])
        return [{} for _ in items]

    def result(self):
        return {"compression_ratio": float(self.metric.compute())}

    def settings(self):
        return self.metric.settings()
