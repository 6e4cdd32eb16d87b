"""The protocol's GLCM written directly with scikit-image: the one independent reference.

Used by the tests (every GLCM number of the toolkit is compared with it) and by the benchmarks
(the upstream-style loop they time). It follows docs/protocol.md section 3 and the authors'
``eval.py`` behaviour: OpenCV grey, ``// 4`` to 64 levels, non-overlapping 64 x 64 patches from
the top left, ``graycomatrix`` with distances 1-4 and angles 0, 45, 90, 135 degrees, 64 levels,
non-symmetric, normalised; the patch score is ``shannon_entropy`` of the whole array, and a
classic property is ``graycoprops(...)`` with each of the 16 values rounded to 4 decimals, then
averaged. Nothing here uses the toolkit's own code.
"""
from __future__ import annotations

import numpy as np

PATCH = 64
DISTANCES = [1, 2, 3, 4]
ANGLES = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]


def opencv_grey(bgr: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(..., COLOR_BGR2GRAY)`` of an OpenCV (BGR) image."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)


def patch_value(patch64: np.ndarray, prop: str = "entropy") -> float:
    """One patch of the 64-level image: its GLCM entropy (the score) or a rounded classic property."""
    from skimage.feature import graycomatrix, graycoprops
    from skimage.measure import shannon_entropy

    glcm = graycomatrix(patch64, DISTANCES, ANGLES, levels=64, symmetric=False, normed=True)
    if prop == "entropy":
        return float(shannon_entropy(glcm))
    return float(np.mean(graycoprops(glcm, prop).round(4)))


def reference_patches(grey: np.ndarray, prop: str = "entropy", rows: int | None = None) -> np.ndarray:
    """Per-patch values of an 8-bit grey image, shape (patch rows, patch columns).

    ``rows`` limits the work to the first patch rows (benchmarks time a part and scale).
    """
    q = grey // 4
    n_rows, n_cols = grey.shape[0] // PATCH, grey.shape[1] // PATCH
    n_rows = n_rows if rows is None else min(rows, n_rows)
    out = np.zeros((n_rows, n_cols))
    for r in range(n_rows):
        for c in range(n_cols):
            out[r, c] = patch_value(q[r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH], prop)
    return out


def reference_glcm_score(rgb: np.ndarray, prop: str = "entropy") -> float:
    """GLCM Score of an H x W x 3 RGB array (OpenCV grey of its BGR form): mean over patches."""
    return float(np.mean(reference_patches(opencv_grey(rgb[..., ::-1]), prop)))


def reference_file_score(path, prop: str = "entropy") -> float:
    """GLCM Score of an image file decoded as the authors' script does (``cv2.imread``)."""
    import cv2

    return float(np.mean(reference_patches(opencv_grey(cv2.imread(str(path))), prop)))
