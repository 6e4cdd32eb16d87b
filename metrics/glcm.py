"""GLCM Score (Aesthetic-4K, PROTOCOL.md section 3) and the classic GLCM properties, vectorised.

The published score is, per 64 x 64 patch of the 64-level grey image, the base-2 entropy of
the histogram of DISTINCT VALUES of the normalised co-occurrence array (64 x 64 levels x 4
distances x 4 angles, non-symmetric), i.e. ``skimage.measure.shannon_entropy(graycomatrix(...))``.

Instead of building 16 dense 64 x 64 matrices per patch and sorting their 65,536 values, the
kernel counts pixel pairs per offset, then groups the non-zero counts by the exact rational
value count / pairs(offset) they normalise to. Two cells hold the same float after
normalisation exactly when these rationals are equal (counts and pair totals are < 2**13, so
distinct rationals differ by far more than a float64 rounding step); all empty cells share the
value 0. Offsets that scikit-image rounds to the same pixel step (distance 1 and 2 at 45 and
135 degrees both step by one pixel diagonally) are counted once with weight 2.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

PATCH = 64
LEVELS = 64
DISTANCES = (1, 2, 3, 4)
ANGLES = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)
PROPERTIES = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")


def pixel_offsets():
    """(row step, column step) of each (distance, angle) slice, rounded as scikit-image does."""
    return [(int(round(math.sin(a) * d)), int(round(math.cos(a) * d))) for d in DISTANCES for a in ANGLES]


@lru_cache(maxsize=None)
def _kernel_tables():
    """Distinct offsets with their weights, and the table mapping (offset, count) -> value id."""
    steps = pixel_offsets()
    distinct = list(dict.fromkeys(steps))
    weights = np.array([steps.count(s) for s in distinct], np.int64)
    offsets = np.array(distinct, np.int64)
    pairs = [(PATCH - abs(dr)) * (PATCH - abs(dc)) for dr, dc in distinct]
    ids: dict[Fraction, int] = {Fraction(0): 0}
    table = np.zeros((len(distinct), max(pairs) + 1), np.int32)
    for s, total in enumerate(pairs):
        for count in range(1, total + 1):
            table[s, count] = ids.setdefault(Fraction(count, total), len(ids))
    return offsets, weights, np.array(pairs, np.int64), table, len(ids)


def _compile():
    import numba

    @numba.njit(parallel=True, cache=True)
    def patch_entropies(q, n_rows, n_cols, offsets, weights, table, n_values):
        out = np.empty(n_rows * n_cols, np.float64)
        cells = LEVELS * LEVELS * len(DISTANCES) * len(ANGLES)
        # one task per patch row: scratch buffers are allocated once per row and reset sparsely
        for row in numba.prange(n_rows):
            counts = np.zeros(LEVELS * LEVELS, np.int32)
            touched = np.empty(LEVELS * LEVELS, np.int32)
            hist = np.zeros(n_values, np.int64)
            seen = np.empty(n_values, np.int32)
            top = row * PATCH
            for col in range(n_cols):
                left = col * PATCH
                n_seen = 0
                nonzero_cells = 0
                for s in range(offsets.shape[0]):
                    dr = offsets[s, 0]
                    dc = offsets[s, 1]
                    n_touched = 0
                    c0 = max(0, -dc)
                    c1 = PATCH - max(0, dc)
                    for r in range(PATCH - dr):
                        for c in range(c0, c1):
                            code = np.int32(q[top + r, left + c]) * LEVELS + q[top + r + dr, left + c + dc]
                            # branch-free "remember the first visit": noise would mispredict a branch
                            touched[n_touched] = code
                            n_touched += counts[code] == 0
                            counts[code] += 1
                    w = weights[s]
                    for k in range(n_touched):
                        code = touched[k]
                        vid = table[s, counts[code]]
                        seen[n_seen] = vid
                        n_seen += hist[vid] == 0
                        hist[vid] += w
                        counts[code] = 0
                    nonzero_cells += w * n_touched
                zeros = cells - nonzero_cells
                entropy = 0.0
                if zeros > 0:
                    prob = zeros / cells
                    entropy -= prob * np.log(prob)
                for k in range(n_seen):
                    prob = hist[seen[k]] / cells
                    entropy -= prob * np.log(prob)
                    hist[seen[k]] = 0
                out[row * n_cols + col] = entropy / np.log(2.0)
        return out

    @numba.njit(parallel=True, cache=True)
    def patch_properties(q, n_rows, n_cols, offsets, weights, pairs):
        # per patch: mean over the 16 slices of the six properties (columns in PROPERTIES order)
        n_patches = n_rows * n_cols
        out = np.zeros((n_patches, 6), np.float64)
        n_slices = len(DISTANCES) * len(ANGLES)
        for p in numba.prange(n_patches):
            top = (p // n_cols) * PATCH
            left = (p % n_cols) * PATCH
            counts = np.zeros(LEVELS * LEVELS, np.int32)
            touched = np.empty(LEVELS * LEVELS, np.int32)
            for s in range(offsets.shape[0]):
                dr = offsets[s, 0]
                dc = offsets[s, 1]
                n_touched = 0
                c0 = max(0, -dc)
                c1 = PATCH - max(0, dc)
                for r in range(PATCH - dr):
                    for c in range(c0, c1):
                        code = np.int32(q[top + r, left + c]) * LEVELS + q[top + r + dr, left + c + dc]
                        if counts[code] == 0:
                            touched[n_touched] = code
                            n_touched += 1
                        counts[code] += 1
                total = pairs[s]
                contrast = 0.0
                dissimilarity = 0.0
                homogeneity = 0.0
                asm = 0.0
                mean_i = 0.0
                mean_j = 0.0
                for k in range(n_touched):
                    code = touched[k]
                    prob = counts[code] / total
                    i = code // LEVELS
                    j = code % LEVELS
                    diff = i - j
                    contrast += prob * diff * diff
                    dissimilarity += prob * abs(diff)
                    homogeneity += prob / (1.0 + diff * diff)
                    asm += prob * prob
                    mean_i += prob * i
                    mean_j += prob * j
                var_i = 0.0
                var_j = 0.0
                cov = 0.0
                for k in range(n_touched):
                    code = touched[k]
                    prob = counts[code] / total
                    di = code // LEVELS - mean_i
                    dj = code % LEVELS - mean_j
                    var_i += prob * di * di
                    var_j += prob * dj * dj
                    cov += prob * di * dj
                    counts[code] = 0
                std_i = np.sqrt(var_i)
                std_j = np.sqrt(var_j)
                if std_i < 1e-15 or std_j < 1e-15:
                    correlation = 1.0
                else:
                    correlation = cov / (std_i * std_j)
                w = weights[s] / n_slices
                out[p, 0] += w * contrast
                out[p, 1] += w * dissimilarity
                out[p, 2] += w * homogeneity
                out[p, 3] += w * np.sqrt(asm)
                out[p, 4] += w * correlation
                out[p, 5] += w * asm
        return out

    return patch_entropies, patch_properties


_KERNELS = None


def _kernels():
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _compile()
    return _KERNELS


def quantize(gray: np.ndarray) -> np.ndarray:
    """8-bit grey to the 64 levels of the protocol (``g // 4``)."""
    return np.ascontiguousarray(gray >> 2)


def _grid(gray: np.ndarray):
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grey image, got {gray.dtype} {gray.shape}")
    rows, cols = gray.shape[0] // PATCH, gray.shape[1] // PATCH
    if rows == 0 or cols == 0:
        from aesthetic4k.errors import ImageError

        raise ImageError("<image>", f"{gray.shape[1]}x{gray.shape[0]} is smaller than one {PATCH}x{PATCH} patch")
    return rows, cols


def glcm_patch_scores(gray: np.ndarray) -> np.ndarray:
    """GLCM Score of every 64 x 64 patch of a uint8 grey image, shape (patch rows, patch columns).

    Patches tile the image from the top left; a remainder narrower than 64 pixels is ignored.
    """
    rows, cols = _grid(gray)
    offsets, weights, _, table, n_values = _kernel_tables()
    entropies, _ = _kernels()
    return entropies(quantize(gray), rows, cols, offsets, weights, table, n_values).reshape(rows, cols)


def glcm_patch_properties(gray: np.ndarray, prop: str) -> np.ndarray:
    """Mean over the 4 x 4 distance/angle grid of a classic GLCM property, per patch, rounded to 4 decimals."""
    if prop not in PROPERTIES:
        raise ValueError(f"unknown GLCM property {prop!r}; choose from {', '.join(PROPERTIES)}")
    rows, cols = _grid(gray)
    offsets, weights, pairs, _, _ = _kernel_tables()
    _, properties = _kernels()
    values = properties(quantize(gray), rows, cols, offsets, weights, pairs)[:, PROPERTIES.index(prop)]
    return np.round(values, 4).reshape(rows, cols)


def glcm_score(image, prop: str = "entropy") -> float:
    """GLCM Score of one image (a path, or an H x W x 3 uint8 RGB array): mean over its patches.

    ``prop="entropy"`` is the published score; the six classic properties are variants.
    """
    from metrics.image_input import read_image, to_gray

    gray = to_gray(read_image(image).bgr)
    scores = glcm_patch_scores(gray) if prop == "entropy" else glcm_patch_properties(gray, prop)
    return float(np.mean(scores))
