"""The two fine-detail metrics, GLCM Score and Compression Ratio: one decode per image, no torch.

:func:`measure_files` reads and decodes each image once and measures what both metrics need
(GLCM Score, JPEG byte count, size), in input order, on threads: file reading, OpenCV
decoding, the GLCM kernels and Pillow's JPEG encoder all release the GIL, so threads scale
across cores with no per-worker start-up (a process pool re-paid imports and kernel loading
in every worker, and fork is unsafe once torch or CUDA are initialised). A bad file becomes a
measurement with ``error`` set instead of an exception, so a run can skip it and go on.

:class:`GLCMScore` and :class:`CompressionRatio` have the torchmetrics shape (``update``,
``compute``, ``reset``, ``per_image``, ``higher_is_better``) without importing torch; their
``add`` takes measurements, so one pass feeds both. ``aesthetic4k_metrics.as_torchmetric(metric)`` gives a torchmetrics
``Metric`` (for ``MetricCollection`` or state synchronisation across processes).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from aesthetic4k_metrics.compression import (MODES, check_jpeg_encodable, compression_ratio, encoder_settings,
                                             jpeg_bytes_of_rgb)
from aesthetic4k_metrics.defaults import CR_MODE, JPEG_QUALITY
from aesthetic4k_metrics.errors import ImageError
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.image_input import DEFAULT_MAX_PIXELS, bgr_to_rgb, read_image, to_gray
from aesthetic4k_metrics.parallel import ordered_stream, usable_cpus
from aesthetic4k_metrics.registry import METRICS

GLCM_PROPS = ("entropy", "contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")


@dataclass
class DetailMeasurement:
    """What one pass over one image measured; ``error`` is the one-line reason of a bad file."""

    path: object                       # the path as given; None for an in-memory array
    width: int = 0
    height: int = 0
    file_bytes: int = 0                # size on disk (0 for arrays)
    glcm_score: float | None = None    # mean over patches of ``glcm_prop``
    glcm_prop: str = "entropy"
    glcm_patches: np.ndarray | None = None  # per-patch values, only with keep_patches
    jpeg_bytes: int | None = None      # JPEG q95 re-encode or file size, per ``jpeg_mode``
    jpeg_mode: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def raw_bytes(self) -> int:
        """H * W * 3: the uncompressed RGB size the Compression Ratio divides."""
        return self.width * self.height * 3

    @property
    def name(self) -> str:
        """The path as printable text."""
        return "<array>" if self.path is None else display_path(self.path)


def _check_options(prop: str, jpeg_mode) -> None:
    if prop not in GLCM_PROPS:
        raise ValueError(f"GLCM prop must be one of {', '.join(GLCM_PROPS)}, got {prop!r}")
    if jpeg_mode is not None and jpeg_mode not in MODES:
        raise ValueError(f"jpeg_mode must be one of {', '.join(MODES)} or None, got {jpeg_mode!r}")


def measure_image(image, *, glcm: bool = True, prop: str = "entropy", jpeg_mode: str | None = CR_MODE,
                  quality: int = JPEG_QUALITY, keep_patches: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                  threads: int = 1) -> DetailMeasurement:
    """Measure one image (a path, or an H x W x 3 uint8 RGB array); a bad file raises ImageError."""
    from aesthetic4k_metrics.glcm import patch_values

    _check_options(prop, jpeg_mode)
    is_file = isinstance(image, (str, bytes, os.PathLike))
    if jpeg_mode == "file" and not is_file:
        raise ValueError("jpeg_mode 'file' needs image files, not arrays")
    decoded = read_image(image, max_pixels)
    height, width = decoded.bgr.shape[:2]
    if jpeg_mode == "jpeg95":    # known now, not after the GLCM work
        check_jpeg_encodable(width, height, display_path(image) if is_file else "<array>")
    out = DetailMeasurement(image if is_file else None, width, height, decoded.file_bytes, glcm_prop=prop,
                            jpeg_mode=jpeg_mode)
    if glcm:
        patches = patch_values(to_gray(decoded.bgr), prop, threads)
        out.glcm_score = float(np.mean(patches))
        if keep_patches:  # the HTML report draws heat maps and crops from them
            out.glcm_patches = patches
    if jpeg_mode == "jpeg95":
        out.jpeg_bytes = jpeg_bytes_of_rgb(bgr_to_rgb(decoded.bgr), quality, out.name)
    elif jpeg_mode == "file":
        out.jpeg_bytes = decoded.file_bytes
    return out


def _measure_or_error(image, options: dict) -> DetailMeasurement:
    try:
        return measure_image(image, **options)
    except ImageError as exc:
        path = image if isinstance(image, (str, bytes, os.PathLike)) else None
        return DetailMeasurement(path, error=exc.reason)
    except MemoryError:
        path = image if isinstance(image, (str, bytes, os.PathLike)) else None
        return DetailMeasurement(path, error="out of memory while measuring this image")


def measure_files(paths: Iterable, *, glcm: bool = True, prop: str = "entropy", jpeg_mode: str | None = CR_MODE,
                  quality: int = JPEG_QUALITY, keep_patches: bool = False, workers: int | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[DetailMeasurement]:
    """Measure every image (paths or RGB arrays), yielding one DetailMeasurement each, in input order.

    ``glcm``: compute the GLCM Score (``prop`` selects a classic property instead). ``jpeg_mode``:
    "jpeg95" (Pillow re-encode at ``quality``), "file" (size on disk) or None. ``workers``: threads
    (default: the usable CPUs; 1 runs everything inline in the caller's thread). When there are
    fewer images than workers, each image's patch rows are split over the spare threads. At most
    2 x workers images are in flight, so memory stays flat. Bad files give ``error``, never raise.
    """
    _check_options(prop, jpeg_mode)  # checked now, not at the first next()
    workers = usable_cpus() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    count = len(paths) if hasattr(paths, "__len__") else None
    lanes = workers if count is None else max(1, min(workers, count))
    options = dict(glcm=glcm, prop=prop, jpeg_mode=jpeg_mode, quality=quality, keep_patches=keep_patches,
                   max_pixels=max_pixels, threads=max(1, workers // lanes))
    return ordered_stream(lambda path: _measure_or_error(path, options), paths, lanes, ahead=2 * lanes,
                          thread_name="a4k-detail")


# ---------------------------------------------------------------- inputs of update()


def as_images(images) -> list:
    """One path/array/tensor or a sequence of them, as a list of paths and H x W x 3 RGB arrays.

    Tensors (duck-typed, torch is not imported) are uint8 (N,)3,H,W in RGB.
    """
    if type(images).__module__.split(".")[0] == "torch":
        array = images.detach().cpu().numpy()
        if array.dtype != np.uint8:
            raise ValueError(f"expected uint8 image tensors, got {array.dtype}")
        array = array[None] if array.ndim == 3 else array
        return [np.ascontiguousarray(a.transpose(1, 2, 0)) for a in array]
    if isinstance(images, (str, bytes, np.ndarray, os.PathLike)):
        return [images]
    out = []
    for image in images:
        out.extend(as_images(image) if type(image).__module__.split(".")[0] == "torch" else [image])
    return out


def _checked(measurements) -> list[DetailMeasurement]:
    measurements = list(measurements)
    for m in measurements:
        if m.error is not None:
            raise ImageError(m.name, m.error)
    return measurements


def from_all_processes(values: list) -> list:
    """``values`` of every process of an initialised torch.distributed group, concatenated in rank order.

    Like a torchmetrics ``compute``; a no-op (and torch is not imported) outside such a group.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, values)
    return [value for part in gathered for value in part]


class _DetailMetric:
    """Shared by both metrics: measuring options and the torch-free metric protocol.

    ``compute`` combines the values of all processes when torch.distributed is initialised (every
    process must call it, as with torchmetrics); ``per_image`` is this process's own values.
    """

    name = ""
    is_differentiable = False
    full_state_update = False

    def __init__(self, workers: int | None, max_pixels: int):
        self.workers = workers
        self.max_pixels = max_pixels
        self.reset()

    @classmethod
    def from_settings(cls, settings):
        """Built for a run (aesthetic4k_metrics.settings.MetricSettings)."""
        return cls(max_pixels=settings.max_pixels)

    def _measure_options(self) -> dict:
        raise NotImplementedError

    def measure(self, images) -> list[DetailMeasurement]:
        """Measure ``images`` (paths, RGB arrays or uint8 tensors) without adding them; raises on a bad file."""
        return _checked(measure_files(as_images(images), workers=self.workers, max_pixels=self.max_pixels,
                                      **self._measure_options()))

    def update(self, images) -> None:
        """Measure and add ``images``; a bad file raises ImageError and adds nothing."""
        self.add(self.measure(images))

    def __call__(self, images):
        self.update(images)
        return self.compute()



class GLCMScore(_DetailMetric):
    """Mean GLCM Score of a set of images (protocol s3); ``prop`` selects a classic variant.

    ``workers`` threads measure the images of one ``update`` (default: the usable CPUs).
    """

    name = "glcm_score"
    higher_is_better = METRICS["glcm_score"].higher_is_better

    def __init__(self, prop: str = "entropy", *, workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        _check_options(prop, None)
        self.prop = prop
        super().__init__(workers, max_pixels)

    def __repr__(self) -> str:
        return f"GLCMScore(prop={self.prop!r})"

    def _measure_options(self) -> dict:
        return dict(glcm=True, prop=self.prop, jpeg_mode=None)

    def reset(self) -> None:
        self._scores: list[float] = []

    def add(self, measurements: Iterable[DetailMeasurement]) -> None:
        """Add images measured by :func:`measure_files` (with ``glcm=True`` and the same ``prop``)."""
        measurements = _checked(measurements)
        for m in measurements:
            if m.glcm_score is None or m.glcm_prop != self.prop:
                raise ValueError(f"{m.name} was measured without the GLCM {self.prop!r} this metric adds")
        self._scores.extend(m.glcm_score for m in measurements)

    def per_image(self) -> np.ndarray:
        return np.array(self._scores, np.float64)

    def per_image_values(self) -> dict:
        return {"glcm_score": list(self._scores)}

    def compute(self) -> float:
        scores = from_all_processes(self._scores)
        return float(np.mean(scores)) if scores else float("nan")

    def summary(self) -> dict:
        return {"glcm_score": self.compute()}

    def provenance(self) -> dict:
        return {"glcm": f"{self.prop}; 64 levels, 64x64 patches, d=1-4, 4 angles, OpenCV grey"}


class CompressionRatio(_DetailMetric):
    """``sum(H*W*3) / sum(JPEG bytes)`` over a set of images (protocol s4).

    ``mode``: "jpeg95" re-encodes each image with Pillow at ``quality``; "file" takes the size on disk.
    """

    name = "compression_ratio"
    higher_is_better = METRICS["compression_ratio"].higher_is_better

    def __init__(self, mode: str = CR_MODE, quality: int = JPEG_QUALITY, *, workers: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.quality = quality
        super().__init__(workers, max_pixels)

    def __repr__(self) -> str:
        return f"CompressionRatio(mode={self.mode!r}" + (f", quality={self.quality})" if self.mode == "jpeg95" else ")")

    @classmethod
    def from_settings(cls, settings):
        """Built for a run: its mode is the run's ``cr_mode``."""
        return cls(mode=settings.cr_mode, max_pixels=settings.max_pixels)

    def _measure_options(self) -> dict:
        return dict(glcm=False, jpeg_mode=self.mode, quality=self.quality)

    def measure(self, images) -> list[DetailMeasurement]:
        images = as_images(images)
        if self.mode == "file" and any(not isinstance(i, (str, bytes, os.PathLike)) for i in images):
            raise ValueError("mode 'file' needs image files, not arrays")
        return super().measure(images)

    def reset(self) -> None:
        self._raw: list[int] = []
        self._compressed: list[int] = []

    def add(self, measurements: Iterable[DetailMeasurement]) -> None:
        """Add images measured by :func:`measure_files` with ``jpeg_mode`` equal to this metric's mode."""
        measurements = _checked(measurements)
        for m in measurements:
            if m.jpeg_bytes is None or m.jpeg_mode != self.mode:
                raise ValueError(f"{m.name} was measured with jpeg_mode={m.jpeg_mode!r}, "
                                 f"this metric needs {self.mode!r}")
        self._raw.extend(m.raw_bytes for m in measurements)
        self._compressed.extend(m.jpeg_bytes for m in measurements)

    def byte_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(raw H*W*3 bytes, compressed bytes) of every image added so far."""
        return np.array(self._raw, np.int64), np.array(self._compressed, np.int64)

    def per_image(self) -> np.ndarray:
        """Each image's own ratio (the set's value is a ratio of sums, not their mean)."""
        return np.array(self._raw, np.float64) / np.maximum(np.array(self._compressed, np.float64), 1)

    def per_image_values(self) -> dict:
        return {"jpeg_bytes": list(self._compressed)}

    def compute(self) -> float:
        pairs = from_all_processes(list(zip(self._raw, self._compressed)))
        return compression_ratio(sum(raw for raw, _ in pairs), sum(compressed for _, compressed in pairs))

    def summary(self) -> dict:
        return {"compression_ratio": self.compute()}

    def provenance(self) -> dict:
        info = {"cr_mode": self.mode}
        if self.mode == "jpeg95":
            info.update(encoder_settings(self.quality))
        return info
