"""torchmetrics ``Metric`` versions of the fine-detail metrics, made by ``as_torchmetric(metric)``
(also ``aesthetic4k_metrics.as_torchmetric``).

They measure with the torch-free classes of :mod:`aesthetic4k_metrics.detail` and keep their values in
torchmetrics states, so they work in a ``MetricCollection`` and synchronise across processes
(per-image lists are concatenated, byte counts too).
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from aesthetic4k_metrics.defaults import CR_MODE, JPEG_QUALITY
from aesthetic4k_metrics.detail import CompressionRatio, GLCMScore


class TorchGLCMScore(Metric):
    """GLCM Score as a torchmetrics Metric; ``compute`` returns a float64 tensor."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = GLCMScore.higher_is_better

    def __init__(self, prop: str = "entropy", *, workers: int | None = None, max_pixels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        options = {} if max_pixels is None else {"max_pixels": max_pixels}
        self.measurer = GLCMScore(prop, workers=workers, **options)
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, images=None, *, measurements=None, scores=None) -> None:
        """Measure ``images``, or add ``measurements`` (from ``measure_files``) or per-image ``scores``."""
        if scores is None:
            probe = GLCMScore(self.measurer.prop, workers=1)
            probe.add(self.measurer.measure(images) if measurements is None else measurements)
            scores = probe.per_image()
        self.scores.append(torch.as_tensor(scores, dtype=torch.float64))

    def add(self, measurements) -> None:
        """Add measurements from :func:`aesthetic4k_metrics.detail.measure_files`."""
        self.update(measurements=measurements)

    def per_image(self) -> torch.Tensor:
        values = self.scores
        if isinstance(values, list):
            return torch.cat([torch.atleast_1d(v) for v in values]) if values else torch.zeros(0, dtype=torch.float64)
        return values

    def compute(self) -> torch.Tensor:
        values = self.per_image()
        return values.double().mean() if values.numel() else torch.tensor(float("nan"), dtype=torch.float64)


class TorchCompressionRatio(Metric):
    """Compression Ratio as a torchmetrics Metric; ``compute`` returns a float64 tensor."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = CompressionRatio.higher_is_better

    def __init__(self, mode: str = CR_MODE, quality: int = JPEG_QUALITY, *, workers: int | None = None,
                 max_pixels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        options = {} if max_pixels is None else {"max_pixels": max_pixels}
        self.measurer = CompressionRatio(mode, quality, workers=workers, **options)
        self.add_state("raw_bytes", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("compressed_bytes", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("image_bytes", default=[], dist_reduce_fx="cat")

    def update(self, images=None, *, measurements=None, raw_bytes=None, compressed_bytes=None) -> None:
        """Measure ``images``, or add ``measurements`` (from ``measure_files``) or per-image byte counts."""
        if raw_bytes is not None or compressed_bytes is not None:
            raw, compressed = torch.as_tensor(raw_bytes), torch.as_tensor(compressed_bytes)
        else:
            probe = CompressionRatio(self.measurer.mode, self.measurer.quality, workers=1)
            probe.add(self.measurer.measure(images) if measurements is None else measurements)
            raw, compressed = (torch.from_numpy(counts) for counts in probe.byte_counts())
        self.raw_bytes += int(raw.sum())
        self.compressed_bytes += int(compressed.sum())
        self.image_bytes.append(torch.as_tensor(compressed, dtype=torch.int64))

    def add(self, measurements) -> None:
        """Add measurements from :func:`aesthetic4k_metrics.detail.measure_files`."""
        self.update(measurements=measurements)

    def provenance(self) -> dict:
        return self.measurer.provenance()

    def compute(self) -> torch.Tensor:
        raw, compressed = int(self.raw_bytes), int(self.compressed_bytes)
        return torch.tensor(raw / compressed if compressed > 0 else float("nan"), dtype=torch.float64)


def as_torchmetric(metric):
    """A torchmetrics version of a :mod:`aesthetic4k_metrics.detail` metric, holding the values it has so far."""
    if isinstance(metric, GLCMScore):
        out = TorchGLCMScore(metric.prop, workers=metric.workers, max_pixels=metric.max_pixels)
        if len(metric.per_image()):
            out.update(scores=metric.per_image())
        return out
    if isinstance(metric, CompressionRatio):
        out = TorchCompressionRatio(metric.mode, metric.quality, workers=metric.workers, max_pixels=metric.max_pixels)
        raw, compressed = metric.byte_counts()
        if len(raw):
            out.update(raw_bytes=raw, compressed_bytes=compressed)
        return out
    raise TypeError(f"no torchmetrics version of {type(metric).__name__}")
