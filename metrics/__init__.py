"""Aesthetic-4K metrics, importable on their own (this package imports nothing from ``aesthetic4k``).

Fine-detail metrics, without torch: ``glcm_score(image)``, ``jpeg_size(image, quality=95)``,
the classes ``GLCMScore`` and ``CompressionRatio`` (torchmetrics-shaped; ``as_torchmetric(metric)``
for a real torchmetrics ``Metric``), and ``measure_files(paths)``, which measures both metrics
in one decode per image. torchmetrics ``Metric`` classes (import torch on first use): ``FID``,
``KID``, ``PatchFID``, ``PatchKID``, ``CLIPScore``, ``Aesthetics``. Folder against folder (or
saved statistics): ``compute_fid``, ``compute_kid``, ``save_reference_stats``.
"""
from importlib import import_module

from metrics.compression import jpeg_size
from metrics.glcm import glcm_score
from metrics.registry import METRICS

# name -> module; resolved lazily so that `import metrics` stays light (and never imports torch)
_LAZY = {
    "GLCMScore": "metrics.detail",
    "CompressionRatio": "metrics.detail",
    "DetailMeasurement": "metrics.detail",
    "measure_files": "metrics.detail",
    "as_torchmetric": "metrics.detail_torch",
    "FID": "metrics.fid",
    "KID": "metrics.kid",
    "PatchFID": "metrics.fid",
    "PatchKID": "metrics.kid",
    "CLIPScore": "metrics.clip_score",
    "Aesthetics": "metrics.aesthetics",
    "compute_fid": "metrics.folders",
    "compute_kid": "metrics.folders",
    "save_reference_stats": "metrics.folders",
    "MetricSettings": "metrics.settings",
}

__all__ = ["glcm_score", "jpeg_size", "METRICS", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")
