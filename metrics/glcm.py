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

Speed comes from the memory layout of the counts: one sweep over the patch's pixels adds every
offset's pair at once, into a table of 16 lanes (one per offset) per level pair. Consecutive
increments thus go to different counters, so flat regions (the same level pair over and over)
do not serialise on one memory cell, and no per-offset bookkeeping of touched cells is needed:
the patch is copied into a buffer framed by a sentinel level, so pairs leaving the patch land in
cells that are never read, and only level pairs of levels present in the patch are scanned.
Small counts (the bulk on noisy patches) are tallied per offset in a small array; only counts
from ``_SMALL`` up go through the (offset, count) -> value table cell by cell.
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

_REACH = max(DISTANCES)  # frame of sentinel pixels around a patch in the sweep buffer
_ROW = PATCH + 2 * _REACH  # row stride of the sweep buffer
_SENTINEL = LEVELS  # level of the frame; cells it lands in are never read
_CODE = LEVELS + 1  # level-pair code a * _CODE + b, b may be the sentinel
_LANES = 16  # counters per level pair: one per distinct offset, padded to a 64-byte cache line
_SMALL = 16  # counts below this are tallied per offset without the value table


def pixel_offsets():
    """(row step, column step) of each (distance, angle) slice, rounded as scikit-image does."""
    return [(int(round(math.sin(a) * d)), int(round(math.cos(a) * d))) for d in DISTANCES for a in ANGLES]


_STEPS = tuple(dict.fromkeys(pixel_offsets()))  # distinct offsets, in slice order
_SHIFTS = tuple(dr * _ROW + dc for dr, dc in _STEPS)  # offsets as steps in the sweep buffer
_WEIGHTS = tuple(pixel_offsets().count(s) for s in _STEPS)  # slices each distinct offset stands for
_STEP_LANES = tuple((shift, lane) for lane, shift in enumerate(_SHIFTS))
assert len(_STEPS) <= _LANES and all(0 <= dr <= _REACH and abs(dc) <= _REACH for dr, dc in _STEPS)


@lru_cache(maxsize=None)
def _kernel_tables():
    """Pair totals per distinct offset, and the table mapping (offset, count) -> value id."""
    pairs = [(PATCH - abs(dr)) * (PATCH - abs(dc)) for dr, dc in _STEPS]
    ids: dict[Fraction, int] = {Fraction(0): 0}
    table = np.zeros((len(_STEPS), max(pairs) + 1), np.int32)
    for s, total in enumerate(pairs):
        for count in range(1, total + 1):
            table[s, count] = ids.setdefault(Fraction(count, total), len(ids))
    return np.array(pairs, np.int64), table, len(ids)


def _compile():
    import numba

    n_steps = len(_STEPS)

    @numba.njit(inline="always")
    def load_patch(q, top, left, frame):
        # copy the patch inside the sentinel frame
        for r in range(PATCH):
            start = (r + _REACH) * _ROW + _REACH
            frame[start:start + PATCH] = q[top + r, left:left + PATCH]

    @numba.njit(inline="always")
    def count_pairs(frame, counts):
        """Every offset's pair of each pixel in one pass; returns the bit mask of levels present.

        Lane s of cell a * _CODE + b counts offset s.
        """
        present = np.uint64(0)
        for r in range(PATCH):
            start = (r + _REACH) * _ROW + _REACH
            for i in range(start, start + PATCH):
                level = frame[i]
                present |= np.uint64(1) << np.uint64(level)
                base = np.int32(level) * _CODE * _LANES
                for step in numba.literal_unroll(_STEP_LANES):
                    counts[base + np.int32(frame[i + step[0]]) * _LANES + step[1]] += 1
        return present

    @numba.njit(inline="always")
    def present_levels(present, levels):
        n = 0
        for v in range(LEVELS):
            levels[n] = v  # branch-free compaction
            n += np.int64((present >> np.uint64(v)) & np.uint64(1))
        return n

    @numba.njit(inline="always")
    def clear_sentinel_cells(counts, levels, n_levels):
        for k in range(n_levels):
            cell = (levels[k] * _CODE + _SENTINEL) * _LANES
            for s in range(_LANES):
                counts[cell + s] = 0

    @numba.njit(parallel=True, cache=True)
    def patch_entropies(q, n_rows, n_cols, table, n_values):
        out = np.empty(n_rows * n_cols, np.float64)
        cells = LEVELS * LEVELS * len(DISTANCES) * len(ANGLES)
        # one task per patch row: scratch buffers are allocated once per row and reset sparsely
        for row in numba.prange(n_rows):
            frame = np.full(_ROW * _ROW, _SENTINEL, np.uint8)
            counts = np.zeros(_CODE * _CODE * _LANES, np.uint32)
            levels = np.empty(LEVELS, np.int32)
            # per offset: cells per count below _SMALL, then one slot for all larger counts
            small = np.zeros(_LANES * (_SMALL + 1), np.int32)
            hist = np.zeros(n_values, np.int64)  # slices' cells per value id
            seen = np.empty(n_values, np.int32)
            for col in range(n_cols):
                load_patch(q, row * PATCH, col * PATCH, frame)
                n_levels = present_levels(count_pairs(frame, counts), levels)
                clear_sentinel_cells(counts, levels, n_levels)
                n_seen = 0
                for i in range(n_levels):
                    for j in range(n_levels):
                        cell = (levels[i] * _CODE + levels[j]) * _LANES
                        large = False
                        for s in range(n_steps):
                            count = counts[cell + s]
                            large |= count >= _SMALL
                            small[s * (_SMALL + 1) + min(count, _SMALL)] += 1
                        if large:  # rare on noise; few cells on smooth patches
                            for s in range(n_steps):
                                count = counts[cell + s]
                                if count >= _SMALL:
                                    vid = table[s, count]
                                    seen[n_seen] = vid
                                    n_seen += hist[vid] == 0
                                    hist[vid] += _WEIGHTS[s]
                        for s in range(_LANES):
                            counts[cell + s] = 0
                nonzero_cells = 0
                for s in range(n_steps):
                    w = _WEIGHTS[s]
                    first = s * (_SMALL + 1)
                    nonzero_cells += w * (n_levels * n_levels - small[first])
                    small[first] = 0
                    small[first + _SMALL] = 0  # counted through the table above
                    for count in range(1, _SMALL):
                        m = small[first + count]
                        if m:
                            small[first + count] = 0
                            vid = table[s, count]
                            seen[n_seen] = vid
                            n_seen += hist[vid] == 0
                            hist[vid] += w * m
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
    def patch_properties(q, n_rows, n_cols, pairs):
        # per patch: mean over the 16 slices of the six properties (columns in PROPERTIES order)
        out = np.zeros((n_rows * n_cols, 6), np.float64)
        n_slices = len(DISTANCES) * len(ANGLES)
        for row in numba.prange(n_rows):
            frame = np.full(_ROW * _ROW, _SENTINEL, np.uint8)
            counts = np.zeros(_CODE * _CODE * _LANES, np.uint32)
            levels = np.empty(LEVELS, np.int32)
            # per-offset sums, one lane per offset
            contrast = np.empty(_LANES)
            dissimilarity = np.empty(_LANES)
            homogeneity = np.empty(_LANES)
            asm = np.empty(_LANES)
            mean_i = np.empty(_LANES)
            mean_j = np.empty(_LANES)
            var_i = np.empty(_LANES)
            var_j = np.empty(_LANES)
            cov = np.empty(_LANES)
            for col in range(n_cols):
                load_patch(q, row * PATCH, col * PATCH, frame)
                n_levels = present_levels(count_pairs(frame, counts), levels)
                clear_sentinel_cells(counts, levels, n_levels)
                for s in range(_LANES):
                    contrast[s] = dissimilarity[s] = homogeneity[s] = asm[s] = 0.0
                    mean_i[s] = mean_j[s] = var_i[s] = var_j[s] = cov[s] = 0.0
                for x in range(n_levels):
                    for y in range(n_levels):
                        i = levels[x]
                        j = levels[y]
                        cell = (i * _CODE + j) * _LANES
                        diff = i - j
                        for s in range(n_steps):
                            prob = counts[cell + s] / pairs[s]
                            contrast[s] += prob * diff * diff
                            dissimilarity[s] += prob * abs(diff)
                            homogeneity[s] += prob / (1.0 + diff * diff)
                            asm[s] += prob * prob
                            mean_i[s] += prob * i
                            mean_j[s] += prob * j
                for x in range(n_levels):
                    for y in range(n_levels):
                        i = levels[x]
                        j = levels[y]
                        cell = (i * _CODE + j) * _LANES
                        for s in range(n_steps):
                            prob = counts[cell + s] / pairs[s]
                            di = i - mean_i[s]
                            dj = j - mean_j[s]
                            var_i[s] += prob * di * di
                            var_j[s] += prob * dj * dj
                            cov[s] += prob * di * dj
                        for s in range(_LANES):
                            counts[cell + s] = 0
                p = row * n_cols + col
                for s in range(n_steps):
                    std_i = np.sqrt(var_i[s])
                    std_j = np.sqrt(var_j[s])
                    if std_i < 1e-15 or std_j < 1e-15:
                        correlation = 1.0
                    else:
                        correlation = cov[s] / (std_i * std_j)
                    w = _WEIGHTS[s] / n_slices
                    out[p, 0] += w * contrast[s]
                    out[p, 1] += w * dissimilarity[s]
                    out[p, 2] += w * homogeneity[s]
                    out[p, 3] += w * np.sqrt(asm[s])
                    out[p, 4] += w * correlation
                    out[p, 5] += w * asm[s]
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
        from metrics.errors import ImageError

        raise ImageError("<image>", f"{gray.shape[1]}x{gray.shape[0]} is smaller than one {PATCH}x{PATCH} patch")
    return rows, cols


def glcm_patch_scores(gray: np.ndarray) -> np.ndarray:
    """GLCM Score of every 64 x 64 patch of a uint8 grey image, shape (patch rows, patch columns).

    Patches tile the image from the top left; a remainder narrower than 64 pixels is ignored.
    """
    rows, cols = _grid(gray)
    _, table, n_values = _kernel_tables()
    entropies, _ = _kernels()
    return entropies(quantize(gray), rows, cols, table, n_values).reshape(rows, cols)


def glcm_patch_properties(gray: np.ndarray, prop: str) -> np.ndarray:
    """Mean over the 4 x 4 distance/angle grid of a classic GLCM property, per patch, rounded to 4 decimals."""
    if prop not in PROPERTIES:
        raise ValueError(f"unknown GLCM property {prop!r}; choose from {', '.join(PROPERTIES)}")
    rows, cols = _grid(gray)
    pairs = _kernel_tables()[0]
    _, properties = _kernels()
    values = properties(quantize(gray), rows, cols, pairs)[:, PROPERTIES.index(prop)]
    return np.round(values, 4).reshape(rows, cols)


def glcm_score(image, prop: str = "entropy") -> float:
    """GLCM Score of one image (a path, or an H x W x 3 uint8 RGB array): mean over its patches.

    ``prop="entropy"`` is the published score; the six classic properties are variants.
    """
    from metrics.image_input import read_image, to_gray

    gray = to_gray(read_image(image).bgr)
    scores = glcm_patch_scores(gray) if prop == "entropy" else glcm_patch_properties(gray, prop)
    return float(np.mean(scores))
