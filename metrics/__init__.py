"""Aesthetic-4K metrics, importable on their own.

One-image functions (numpy only): ``glcm_score(image)``, ``jpeg_size(image, quality=95)``.
torchmetrics ``Metric`` classes (import torch on first use): ``GLCMScore``, ``CompressionRatio``,
``FID``, ``KID``, ``PatchFID``, ``PatchKID``, ``CLIPScore``, ``Aesthetics``.
"""
from importlib import import_module

from metrics.compression import jpeg_size
from metrics.glcm import glcm_score
from metrics.registry import METRICS

# class name -> module; resolved lazily so that `import metrics` does not import torch
_LAZY = {
    "GLCMScore": "metrics.detail",
    "CompressionRatio": "metrics.detail",
    "FID": "metrics.fid",
    "KID": "metrics.kid",
    "PatchFID": "metrics.fid",
    "PatchKID": "metrics.kid",
    "CLIPScore": "metrics.clip_score",
    "Aesthetics": "metrics.aesthetics",
}

__all__ = ["glcm_score", "jpeg_size", "METRICS", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metrics' has no attribute {name!r}")
