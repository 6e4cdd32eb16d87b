"""The two fine-detail metrics as torch-free metric classes: ``GLCMScore`` and ``CompressionRatio``.

Both read an image once through ``measure_files`` (decode, GLCM patch scores, JPEG byte count),
which a run also calls directly to feed both metrics from one decode.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from metrics.compression import MODES, compression_ratio, encoder_settings, jpeg_bytes_of_rgb
from metrics.errors import ImageError
from metrics.glcm import PROPERTIES, glcm_patch_properties, glcm_patch_scores
from metrics.image_input import read_image, to_gray
from metrics.registry import METRICS


@dataclass
class DetailMeasurement:
    path: str
    width: int = 0
    height: int = 0
    file_bytes: int = 0
    glcm_score: Optional[float] = None
    glcm_patches: Optional[np.ndarray] = None
    jpeg_bytes: Optional[int] = None
    error: Optional[str] = None      # why the file cannot be used (the other fields are then empty)


def measure(image, glcm: bool = True, jpeg_mode: Optional[str] = "jpeg95", keep_patches: bool = False,
            prop: str = "entropy", quality: int = 95) -> DetailMeasurement:
    """Decode one image once and measure what is asked for; a bad file gives ``error``, not an exception."""
    name = str(image) if not isinstance(image, np.ndarray) else "<array>"
    try:
        decoded = read_image(image)
    except ImageError as exc:
        return DetailMeasurement(name, error=exc.reason)
    height, width = decoded.bgr.shape[:2]
    out = DetailMeasurement(name, width, height, decoded.file_bytes)
    try:
        if glcm:
            gray = to_gray(decoded.bgr)
            patches = glcm_patch_scores(gray) if prop == "entropy" else glcm_patch_properties(gray, prop)
            out.glcm_score = float(np.mean(patches))
            out.glcm_patches = patches if keep_patches else None
        if jpeg_mode == "jpeg95":
            out.jpeg_bytes = jpeg_bytes_of_rgb(decoded.rgb, quality)
        elif jpeg_mode == "file":
            if not decoded.file_bytes:
                raise ImageError(name, "Compression Ratio mode 'file' needs image files, not arrays")
            out.jpeg_bytes = decoded.file_bytes
    except ImageError as exc:
        return DetailMeasurement(name, error=exc.reason)
    return out


def measure_files(paths, glcm: bool = True, jpeg_mode: Optional[str] = "jpeg95", keep_patches: bool = False,
                  workers: int = 1, prop: str = "entropy", max_pixels: int = 250_000_000):
    """``measure`` over many images, in input order, with ``workers`` threads."""
    paths = list(paths)
    if workers <= 1 or len(paths) <= 1:
        for path in paths:
            yield measure(path, glcm, jpeg_mode, keep_patches, prop)
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(lambda p: measure(p, glcm, jpeg_mode, keep_patches, prop), paths)


def _as_images(images) -> list:
    if isinstance(images, (str, np.ndarray)) or hasattr(images, "__fspath__"):
        return [images]
    if type(images).__module__.startswith("torch"):
        if images.ndim == 3:
            images = images[None]
        return [img.permute(1, 2, 0).cpu().numpy() for img in images]
    return list(images)


class GLCMScore:
    """Mean GLCM Score of a set of images (protocol s3); ``prop`` selects a classic variant."""

    name = "glcm_score"
    higher_is_better = METRICS["glcm_score"].higher_is_better

    def __init__(self, prop: str = "entropy"):
        if prop != "entropy" and prop not in PROPERTIES:
            raise ValueError(f"prop must be 'entropy' or one of {', '.join(PROPERTIES)}")
        self.prop = prop
        self.scores: list[float] = []

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def update(self, images) -> None:
        """Score images (paths, H x W x 3 uint8 RGB arrays or uint8 tensors); a bad file raises ImageError."""
        for m in measure_files(_as_images(images), glcm=True, jpeg_mode=None, prop=self.prop):
            if m.error:
                raise ImageError(m.path, m.error)
            self.scores.append(m.glcm_score)

    def add(self, measurements) -> None:
        self.scores.extend(m.glcm_score for m in measurements)

    def per_image(self) -> list[float]:
        return list(self.scores)

    def per_image_values(self) -> dict:
        return {"glcm_score": self.per_image()}

    def compute(self) -> float:
        return float(np.mean(self.scores)) if self.scores else math.nan

    def summary(self) -> dict:
        return {"glcm_score": self.compute()}

    def provenance(self) -> dict:
        return {"glcm": "entropy of distinct values, 64 levels, 64x64 patches, d=1-4, 4 angles, OpenCV grey"}

    def reset(self) -> None:
        self.scores = []

    def __repr__(self) -> str:
        return f"GLCMScore(prop={self.prop!r})"


class CompressionRatio:
    """``sum(H*W*3) / sum(JPEG bytes)`` over a set of images (protocol s4)."""

    name = "compression_ratio"
    higher_is_better = METRICS["compression_ratio"].higher_is_better

    def __init__(self, mode: str = "jpeg95", quality: int = 95):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.quality = quality
        self.reset()

    @classmethod
    def from_settings(cls, settings):
        return cls(mode=settings.cr_mode)

    def update(self, images) -> None:
        for m in measure_files(_as_images(images), glcm=False, jpeg_mode=self.mode):
            if m.error:
                raise ImageError(m.path, m.error)
            self.add([m])

    def add(self, measurements) -> None:
        for m in measurements:
            self.raw_bytes += m.width * m.height * 3
            self.image_bytes.append(int(m.jpeg_bytes))

    def per_image_values(self) -> dict:
        return {"jpeg_bytes": list(self.image_bytes)}

    def compute(self) -> float:
        return compression_ratio(self.raw_bytes, sum(self.image_bytes))

    def summary(self) -> dict:
        return {"compression_ratio": self.compute()}

    def provenance(self) -> dict:
        info = {"cr_mode": self.mode}
        if self.mode == "jpeg95":
            info.update(encoder_settings(self.quality))
        return info

    def reset(self) -> None:
        self.raw_bytes = 0
        self.image_bytes: list[int] = []

    def __repr__(self) -> str:
        return f"CompressionRatio(mode={self.mode!r})"
