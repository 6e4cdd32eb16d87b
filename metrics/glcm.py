"""GLCM Score (Aesthetic-4K, docs/protocol.md section 3) and the classic GLCM properties.

What is computed and how fast is explained in :mod:`aesthetic4k_metrics.glcm_kernels` (the compiled
kernels) and :mod:`aesthetic4k_metrics.native_kernels` (how a new process gets them without compiling).
This module cuts an image into bands of patch rows and runs the kernels on them, on threads
when asked (the kernels release the GIL).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from aesthetic4k_metrics import glcm_kernels as _geometry
from aesthetic4k_metrics.glcm_kernels import ANGLES, DISTANCES, LEVELS, PATCH, PROPERTIES, pixel_offsets  # noqa: F401

PROPERTY_DECIMALS = 4  # the authors' script rounds each distance/angle value of a property to 4 decimals


def kernels():
    """The compiled kernels (loaded on first use; see :mod:`aesthetic4k_metrics.native_kernels`)."""
    from aesthetic4k_metrics import native_kernels

    return native_kernels.load(_geometry)


@lru_cache(maxsize=None)
def _tables():
    table, n_values = _geometry.value_table()
    return table, n_values, _geometry.pair_totals()


def quantize(gray: np.ndarray) -> np.ndarray:
    """8-bit grey to the 64 levels of the protocol (``g // 4``)."""
    return np.ascontiguousarray(gray >> 2)


def patch_grid(gray: np.ndarray) -> tuple[int, int]:
    """(patch rows, patch columns) of a uint8 grey image; ImageError when not even one patch fits."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grey image, got {gray.dtype} {gray.shape}")
    rows, cols = gray.shape[0] // PATCH, gray.shape[1] // PATCH
    if rows == 0 or cols == 0:
        from aesthetic4k_metrics.errors import ImageError

        raise ImageError("<image>", f"{gray.shape[1]}x{gray.shape[0]} is smaller than one {PATCH}x{PATCH} patch")
    return rows, cols


def _in_bands(call, q: np.ndarray, out: np.ndarray, threads: int) -> None:
    """``call(q_band, out_band)`` on bands of patch rows, on up to ``threads`` threads."""
    rows = out.shape[0]
    bands = max(1, min(int(threads or 1), rows))
    edges = [rows * k // bands for k in range(bands + 1)]
    parts = [(q[a * PATCH:b * PATCH], out[a:b]) for a, b in zip(edges, edges[1:])]
    if bands == 1:
        call(*parts[0])
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(bands) as pool:
        for done in [pool.submit(call, *part) for part in parts]:
            done.result()


def glcm_patch_scores(gray: np.ndarray, threads: int = 1) -> np.ndarray:
    """GLCM Score of every 64 x 64 patch of a uint8 grey image, shape (patch rows, patch columns).

    Patches tile the image from the top left; a remainder narrower than 64 pixels is ignored.
    ``threads`` > 1 splits the patch rows over that many threads.
    """
    rows, cols = patch_grid(gray)
    table, n_values, _ = _tables()
    entropies = kernels().entropies
    out = np.empty((rows, cols), np.float64)
    _in_bands(lambda q, o: entropies(q, table, n_values, o, *_geometry.entropy_scratch(n_values)),
              quantize(gray[:rows * PATCH]), out, threads)
    return out


def glcm_patch_properties(gray: np.ndarray, prop: str, threads: int = 1) -> np.ndarray:
    """A classic GLCM property per patch, as the authors' script computes it.

    Per patch: the property of each of the 16 distance/angle slices rounded to 4 decimals, then
    their mean (``graycoprops(glcm, prop).round(4).mean()``).
    """
    if prop not in PROPERTIES:
        raise ValueError(f"unknown GLCM property {prop!r}; choose from {', '.join(PROPERTIES)}")
    rows, cols = patch_grid(gray)
    pairs = _tables()[2]
    properties = kernels().properties
    per_offset = np.empty((rows, cols, len(PROPERTIES), len(_geometry.STEPS)), np.float64)
    _in_bands(lambda q, o: properties(q, pairs, o, *_geometry.property_scratch()),
              quantize(gray[:rows * PATCH]), per_offset, threads)
    per_slice = per_offset[:, :, PROPERTIES.index(prop), list(_geometry.SLICE_STEP)]
    return np.round(per_slice, PROPERTY_DECIMALS).mean(axis=-1)


def patch_values(gray: np.ndarray, prop: str = "entropy", threads: int = 1) -> np.ndarray:
    """Per-patch values of ``prop``: "entropy" (the GLCM Score) or one of PROPERTIES."""
    if prop == "entropy":
        return glcm_patch_scores(gray, threads)
    return glcm_patch_properties(gray, prop, threads)


def glcm_score(image, prop: str = "entropy", *, max_pixels: int | None = None) -> float:
    """GLCM Score of one image (a path, or an H x W x 3 uint8 RGB array): mean over its patches.

    ``prop="entropy"`` is the published score; the six classic properties are variants.
    """
    from aesthetic4k_metrics.image_input import DEFAULT_MAX_PIXELS, read_image, to_gray

    decoded = read_image(image, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    return float(np.mean(patch_values(to_gray(decoded.bgr), prop)))
