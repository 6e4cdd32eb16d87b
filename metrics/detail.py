"""torchmetrics wrappers of the two fine-detail metrics: ``GLCMScore`` and ``CompressionRatio``.

States are declared with ``add_state`` so they synchronise across processes (lists are
concatenated, byte totals summed); per-image values stay available after ``compute``.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from metrics.compression import MODES, compression_ratio, encoder_settings, jpeg_bytes_of_rgb
from metrics.glcm import PROPERTIES, glcm_patch_properties, glcm_patch_scores
from metrics.image_input import read_image, to_gray


def _as_images(images):
    """Accept one path/array/tensor or a sequence of them; tensors are uint8 (N,)3,H,W in RGB."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 image tensors, got {images.dtype}")
        if images.ndim == 3:
            images = images[None]
        return [img.permute(1, 2, 0).cpu().numpy() for img in images]
    if isinstance(images, (str, np.ndarray)) or hasattr(images, "__fspath__"):
        return [images]
    return list(images)


class GLCMScore(Metric):
    """Mean GLCM Score of a set of images (PROTOCOL.md section 3); ``prop`` selects a classic variant."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, prop: str = "entropy", **kwargs):
        super().__init__(**kwargs)
        if prop != "entropy" and prop not in PROPERTIES:
            raise ValueError(f"prop must be 'entropy' or one of {', '.join(PROPERTIES)}")
        self.prop = prop
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def score_one(self, image) -> float:
        gray = to_gray(read_image(image).bgr)
        patches = glcm_patch_scores(gray) if self.prop == "entropy" else glcm_patch_properties(gray, self.prop)
        return float(np.mean(patches))

    def update(self, images=None, *, scores=None) -> None:
        """Score ``images`` (paths, RGB arrays or uint8 tensors), or add ``scores`` computed elsewhere."""
        if scores is None:
            scores = [self.score_one(image) for image in _as_images(images)]
        self.scores.append(torch.as_tensor(list(scores), dtype=torch.float64))

    def per_image(self) -> torch.Tensor:
        return torch.cat([torch.atleast_1d(s) for s in self.scores]) if self.scores else torch.zeros(0)

    def compute(self) -> torch.Tensor:
        values = self.per_image() if isinstance(self.scores, list) else self.scores
        if values.numel() == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return values.double().mean()


class CompressionRatio(Metric):
    """``sum(H*W*3) / sum(JPEG bytes)`` over a set of images (PROTOCOL.md section 4)."""

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self, mode: str = "jpeg95", quality: int = 95, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.quality = quality
        self.add_state("raw_bytes", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("compressed_bytes", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("image_bytes", default=[], dist_reduce_fx="cat")

    def measure_one(self, image) -> tuple[int, int]:
        """(raw RGB bytes, compressed bytes) of one image."""
        decoded = read_image(image)
        height, width = decoded.bgr.shape[:2]
        if self.mode == "file":
            if decoded.file_bytes == 0:
                raise ValueError("mode 'file' needs image files, not arrays")
            return height * width * 3, decoded.file_bytes
        return height * width * 3, jpeg_bytes_of_rgb(decoded.rgb, self.quality)

    def update(self, images=None, *, raw_bytes=None, compressed_bytes=None) -> None:
        """Measure ``images``, or add per-image byte counts measured elsewhere (the worker processes)."""
        if raw_bytes is None:
            measured = [self.measure_one(image) for image in _as_images(images)]
            raw_bytes = [raw for raw, _ in measured]
            compressed_bytes = [compressed for _, compressed in measured]
        self.raw_bytes += int(sum(raw_bytes))
        self.compressed_bytes += int(sum(compressed_bytes))
        self.image_bytes.append(torch.as_tensor(list(compressed_bytes), dtype=torch.int64))

    def settings(self) -> dict:
        info = {"cr_mode": self.mode}
        if self.mode == "jpeg95":
            info.update(encoder_settings(self.quality))
        return info

    def compute(self) -> torch.Tensor:
        return torch.tensor(compression_ratio(int(self.raw_bytes), int(self.compressed_bytes)), dtype=torch.float64)
