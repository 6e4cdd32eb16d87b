"""Aesthetic-4K metrics, importable on their own (this package imports nothing from ``aesthetic4k``).

Fine-detail metrics, without torch: ``glcm_score(image)``, ``jpeg_size(image, quality=95)``,
the classes ``GLCMScore`` and ``CompressionRatio`` (torchmetrics-shaped; ``as_torchmetric(metric)``
for a real torchmetrics ``Metric``), and ``measure_files(paths)``, which measures both metrics
in one decode per image. torchmetrics ``Metric`` classes (import torch on first use): ``FID``,
``KID``, ``PatchFID``, ``PatchKID``, ``CLIPScore``, ``Aesthetics``. Folder against folder (or
saved statistics): ``compute_fid``, ``compute_kid``, ``save_reference_stats``.
"""
from importlib import import_module

from aesthetic4k_metrics.compression import jpeg_size
from aesthetic4k_metrics.glcm import glcm_score
from aesthetic4k_metrics.registry import METRICS

# name -> module; resolved lazily so that `import aesthetic4k_metrics` stays light (and never imports torch)
_LAZY = {
    "GLCMScore": "aesthetic4k_metrics.detail",
    "CompressionRatio": "aesthetic4k_metrics.detail",
    "DetailMeasurement": "aesthetic4k_metrics.detail",
    "measure_files": "aesthetic4k_metrics.detail",
    "as_torchmetric": "aesthetic4k_metrics.detail_torch",
    "FID": "aesthetic4k_metrics.fid",
    "KID": "aesthetic4k_metrics.kid",
    "PatchFID": "aesthetic4k_metrics.fid",
    "PatchKID": "aesthetic4k_metrics.kid",
    "CLIPScore": "aesthetic4k_metrics.clip_score",
    "Aesthetics": "aesthetic4k_metrics.aesthetics",
    "compute_fid": "aesthetic4k_metrics.folders",
    "compute_kid": "aesthetic4k_metrics.folders",
    "save_reference_stats": "aesthetic4k_metrics.folders",
    "MetricSettings": "aesthetic4k_metrics.settings",
}

__all__ = ["glcm_score", "jpeg_size", "METRICS", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aesthetic4k_metrics' has no attribute {name!r}")
