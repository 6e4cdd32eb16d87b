"""The GLCM geometry of the protocol and the compiled kernels that count co-occurrences.

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
from ``_SMALL`` up go through the (offset, count) -> value table cell by cell. A pixel whose 14
neighbours all have its level (about half the pixels of real pictures at 64 levels) is only
counted once per level, its pairs added to the diagonal cell at the end (1.1-1.3x on the
benchmark pictures, 7% slower on pure noise).

How the kernels are compiled and reused. The functions marked ``@_kernel`` are plain Python
here, so importing this module does not import numba; :func:`jitted` turns them into numba
functions (``nogil``: callers run them on threads). :mod:`aesthetic4k_metrics.native_kernels` compiles the
two pointer-taking entry points once into machine code, keeps it in a cache file and loads it
in later processes without numba; when that is not possible the numba functions are called
directly (numba's own on-disk cache, ``cache=True``). The kernels allocate nothing: every
buffer comes from the caller (:func:`entropy_scratch`, :func:`property_scratch`), which is
what lets the machine code run without numba's runtime. Every constant the kernels read lives
in this file: the compiled code freezes them, and both caches are invalidated exactly when
this file changes.
"""
from __future__ import annotations

import math

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
_SLICES = len(DISTANCES) * len(ANGLES)


def pixel_offsets():
    """(row step, column step) of each (distance, angle) slice, rounded as scikit-image does."""
    return [(int(round(math.sin(a) * d)), int(round(math.cos(a) * d))) for d in DISTANCES for a in ANGLES]


STEPS = tuple(dict.fromkeys(pixel_offsets()))  # distinct offsets, in slice order
SLICE_STEP = tuple(STEPS.index(s) for s in pixel_offsets())  # slice -> index of its distinct offset
_N_STEPS = len(STEPS)
_WEIGHTS = tuple(pixel_offsets().count(s) for s in STEPS)  # slices each distinct offset stands for
_STEP_LANES = tuple((dr * _ROW + dc, lane) for lane, (dr, dc) in enumerate(STEPS))  # (buffer step, lane)
assert _N_STEPS <= _LANES and all(0 <= dr <= _REACH and abs(dc) <= _REACH for dr, dc in STEPS)


def pair_totals() -> np.ndarray:
    """Number of pixel pairs in a patch for each distinct offset."""
    return np.array([(PATCH - abs(dr)) * (PATCH - abs(dc)) for dr, dc in STEPS], np.int64)


def value_table() -> tuple[np.ndarray, int]:
    """The table mapping (offset, count) -> value id, and the number of ids.

    Equal rationals count / total share an id (0 is the empty cell); exact integer arithmetic
    on the reduced fractions.
    """
    pairs = pair_totals()
    biggest = int(pairs.max())
    counts = np.arange(1, biggest + 1, dtype=np.int64)
    keys = []
    for total in pairs:
        c = counts[:total]
        g = np.gcd(c, total)
        keys.append((c // g) * (biggest + 1) + total // g)
    _, ids = np.unique(np.concatenate(keys), return_inverse=True)
    table = np.zeros((_N_STEPS, biggest + 1), np.int32)
    start = 0
    for s, total in enumerate(pairs):
        table[s, 1:total + 1] = ids[start:start + total] + 1
        start += total
    return table, int(ids.max()) + 2


def entropy_scratch(n_values: int) -> tuple:
    """The working buffers of one :func:`_patch_entropies` call (one per thread)."""
    return (np.full(_ROW * _ROW, _SENTINEL, np.uint8),      # patch framed by the sentinel level
            np.zeros(_CODE * _CODE * _LANES, np.uint32),    # counts (uint32: measured faster than uint16)
            np.empty(LEVELS, np.int32),                      # levels present in the patch
            np.zeros(_LANES * (_SMALL + 1), np.int32),      # per offset: cells per small count
            np.zeros(n_values, np.int64),                    # slices' cells per value id
            np.empty(n_values, np.int32),                    # value ids seen in the patch
            *_count_scratch())


def _count_scratch() -> tuple:
    return (np.empty(PATCH, np.uint8),                       # pixels of a row whose neighbours share their level
            np.zeros(LEVELS, np.int32))                      # such pixels per level


def property_scratch() -> tuple:
    """The working buffers of one :func:`_patch_properties` call."""
    return (np.full(_ROW * _ROW, _SENTINEL, np.uint8), np.zeros(_CODE * _CODE * _LANES, np.uint32),
            np.empty(LEVELS, np.int32), np.empty((10, _LANES), np.float64), *_count_scratch())


# ---------------------------------------------------------------- kernels (numba after jitted())

_MARKED = {}  # function name -> numba options


def _kernel(**options):
    def mark(function):
        _MARKED[function.__name__] = options
        return function
    return mark


_NUMBA = dict(nogil=True, error_model="numpy")


@_kernel(inline="always")
def _load_patch(q, top, left, frame):
    # copy the patch inside the sentinel frame
    for r in range(PATCH):
        start = (r + _REACH) * _ROW + _REACH
        frame[start:start + PATCH] = q[top + r, left:left + PATCH]


@_kernel(inline="always")
def _count_pairs(frame, counts, flat, diagonal):
    """Every offset's pair of each pixel; returns the bit mask of levels present.

    Lane s of cell a * _CODE + b counts offset s. A pixel whose 14 neighbours all share its
    level (most pixels of smooth areas) only adds one to ``diagonal[level]``: its 14 pairs all
    fall in cell (level, level), which gets these counts once at the end.
    """
    present = np.uint64(0)
    for r in range(PATCH):
        start = (r + _REACH) * _ROW + _REACH
        for x in range(PATCH):
            i = start + x
            level = frame[i]
            same = np.uint8(1)
            for step in numba.literal_unroll(_STEP_LANES):  # noqa: F821 (bound by jitted())
                same &= frame[i + step[0]] == level
            flat[x] = same
        for x in range(PATCH):
            i = start + x
            level = frame[i]
            present |= np.uint64(1) << np.uint64(level)
            if flat[x]:
                diagonal[level] += 1
            else:
                base = np.int32(level) * _CODE * _LANES
                for step in numba.literal_unroll(_STEP_LANES):  # noqa: F821
                    counts[base + np.int32(frame[i + step[0]]) * _LANES + step[1]] += 1
    for level in range(LEVELS):
        if diagonal[level]:
            cell = (level * _CODE + level) * _LANES
            for s in range(_N_STEPS):
                counts[cell + s] += diagonal[level]
            diagonal[level] = 0
    return present


@_kernel(inline="always")
def _present_levels(present, levels):
    n = 0
    for v in range(LEVELS):
        levels[n] = v  # branch-free compaction
        n += np.int64((present >> np.uint64(v)) & np.uint64(1))
    return n


@_kernel(inline="always")
def _clear_sentinel_cells(counts, levels, n_levels):
    for k in range(n_levels):
        cell = (levels[k] * _CODE + _SENTINEL) * _LANES
        for s in range(_LANES):
            counts[cell + s] = 0


@_kernel(cache=True)
def _patch_entropies(q, table, n_values, out, frame, counts, levels, small, hist, seen, flat, diagonal):
    """GLCM Score of every patch of the 64-level image ``q`` into ``out`` (patch rows x patch columns)."""
    n_rows, n_cols = out.shape
    cells = LEVELS * LEVELS * _SLICES
    for row in range(n_rows):
        for col in range(n_cols):
            _load_patch(q, row * PATCH, col * PATCH, frame)
            n_levels = _present_levels(_count_pairs(frame, counts, flat, diagonal), levels)
            _clear_sentinel_cells(counts, levels, n_levels)
            n_seen = 0
            for i in range(n_levels):
                for j in range(n_levels):
                    cell = (levels[i] * _CODE + levels[j]) * _LANES
                    large = False
                    for s in range(_N_STEPS):
                        count = counts[cell + s]
                        large |= count >= _SMALL
                        small[s * (_SMALL + 1) + min(count, _SMALL)] += 1
                    if large:  # rare on noise; few cells on smooth patches
                        for s in range(_N_STEPS):
                            count = counts[cell + s]
                            if count >= _SMALL:
                                vid = table[s, count]
                                seen[n_seen] = vid
                                n_seen += hist[vid] == 0
                                hist[vid] += _WEIGHTS[s]
                    for s in range(_LANES):
                        counts[cell + s] = 0
            nonzero_cells = 0
            for s in range(_N_STEPS):
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
            out[row, col] = entropy / np.log(2.0)


@_kernel(cache=True)
def _patch_properties(q, pairs, out, frame, counts, levels, sums, flat, diagonal):
    """The six properties (PROPERTIES order) of every distinct offset of every patch of ``q``.

    ``out`` is (patch rows, patch columns, 6, distinct offsets); averaging over the 16 slices is
    left to the caller, which rounds each slice first as the authors' script does. Each value is
    computed with the same floating-point operations, in the same order, as scikit-image's
    ``graycoprops`` (which normalises the normalised matrix once more, and sums cell by cell in
    row-major order; cells of absent levels only add zeros), so the rounding to 4 decimals
    cannot go the other way on a value that sits halfway.
    """
    n_rows, n_cols = out.shape[0], out.shape[1]
    for row in range(n_rows):
        for col in range(n_cols):
            _load_patch(q, row * PATCH, col * PATCH, frame)
            n_levels = _present_levels(_count_pairs(frame, counts, flat, diagonal), levels)
            _clear_sentinel_cells(counts, levels, n_levels)
            # per offset: 0 contrast, 1 dissimilarity, 2 homogeneity, 3 ASM, 4-5 means, 6-7 variances,
            # 8 covariance, 9 sum of the normalised matrix (close to, not always exactly, 1)
            sums[:] = 0.0
            for x in range(n_levels):
                for y in range(n_levels):
                    cell = (levels[x] * _CODE + levels[y]) * _LANES
                    for s in range(_N_STEPS):
                        sums[9, s] += counts[cell + s] / pairs[s]
            for x in range(n_levels):
                for y in range(n_levels):
                    i = levels[x]
                    j = levels[y]
                    cell = (i * _CODE + j) * _LANES
                    diff = i - j
                    for s in range(_N_STEPS):
                        prob = (counts[cell + s] / pairs[s]) / sums[9, s]
                        sums[0, s] += prob * (diff * diff)
                        sums[1, s] += prob * abs(diff)
                        sums[2, s] += prob * (1.0 / (1.0 + diff * diff))
                        sums[3, s] += prob * prob
                        sums[4, s] += i * prob
                        sums[5, s] += j * prob
            for x in range(n_levels):
                for y in range(n_levels):
                    i = levels[x]
                    j = levels[y]
                    cell = (i * _CODE + j) * _LANES
                    for s in range(_N_STEPS):
                        prob = (counts[cell + s] / pairs[s]) / sums[9, s]
                        di = i - sums[4, s]
                        dj = j - sums[5, s]
                        sums[6, s] += prob * (di * di)
                        sums[7, s] += prob * (dj * dj)
                        sums[8, s] += prob * (di * dj)
                    for s in range(_LANES):
                        counts[cell + s] = 0
            for s in range(_N_STEPS):
                std_i = np.sqrt(sums[6, s])
                std_j = np.sqrt(sums[7, s])
                out[row, col, 0, s] = sums[0, s]
                out[row, col, 1, s] = sums[1, s]
                out[row, col, 2, s] = sums[2, s]
                out[row, col, 3, s] = np.sqrt(sums[3, s])
                out[row, col, 4, s] = 1.0 if std_i < 1e-15 or std_j < 1e-15 else sums[8, s] / (std_i * std_j)
                out[row, col, 5, s] = sums[3, s]


# Entry points for machine code: each array argument arrives as a data pointer followed by its
# shape (C order), every other argument as a 64-bit integer. ENTRIES describes them.
@_kernel()
def _entropies_entry(q, q0, q1, table, t0, t1, n_values, out, o0, o1,
                     frame, f0, counts, c0, levels, l0, small, s0, hist, h0, seen, e0, flat, a0, diagonal, d0):
    carray = numba.carray  # noqa: F821 (bound by jitted())
    _patch_entropies(carray(q, (q0, q1)), carray(table, (t0, t1)), n_values, carray(out, (o0, o1)),
                     carray(frame, (f0,)), carray(counts, (c0,)), carray(levels, (l0,)),
                     carray(small, (s0,)), carray(hist, (h0,)), carray(seen, (e0,)),
                     carray(flat, (a0,)), carray(diagonal, (d0,)))


@_kernel()
def _properties_entry(q, q0, q1, pairs, p0, out, o0, o1, o2, o3, frame, f0, counts, c0, levels, l0, sums, m0, m1,
                      flat, a0, diagonal, d0):
    carray = numba.carray  # noqa: F821 (bound by jitted())
    _patch_properties(carray(q, (q0, q1)), carray(pairs, (p0,)), carray(out, (o0, o1, o2, o3)),
                      carray(frame, (f0,)), carray(counts, (c0,)), carray(levels, (l0,)), carray(sums, (m0, m1)),
                      carray(flat, (a0,)), carray(diagonal, (d0,)))


# kernel name -> (entry point, array kernel, argument kinds: "dtype:ndim" for arrays, "int" otherwise)
ENTRIES = {
    "entropies": ("_entropies_entry", "_patch_entropies",
                  ("uint8:2", "int32:2", "int", "float64:2",
                   "uint8:1", "uint32:1", "int32:1", "int32:1", "int64:1", "int32:1", "uint8:1", "int32:1")),
    "properties": ("_properties_entry", "_patch_properties",
                   ("uint8:2", "int64:1", "float64:4", "uint8:1", "uint32:1", "int32:1", "float64:2",
                    "uint8:1", "int32:1")),
}


def self_test(kernels) -> None:
    """Checks freshly loaded kernels on a flat patch, whose score follows from the definition.

    One level everywhere: each of the 16 slices holds one cell of value 1.0, all other cells 0.
    """
    table, n_values = value_table()
    out = np.empty((1, 1))
    kernels.entropies(np.full((PATCH, PATCH), 7, np.uint8), table, n_values, out, *entropy_scratch(n_values))
    cells = LEVELS * LEVELS * _SLICES
    ones, zeros = _SLICES / cells, (cells - _SLICES) / cells
    expected = -(ones * math.log2(ones) + zeros * math.log2(zeros))
    if abs(out[0, 0] - expected) > 1e-12:
        raise RuntimeError(f"GLCM kernel self-test failed: {out[0, 0]!r} != {expected!r}")


def jitted(disk_cache: bool = True):
    """This module with its kernels compiled by numba (imports numba; idempotent, not thread-safe alone).

    ``disk_cache=False``: no numba on-disk cache (:mod:`aesthetic4k_metrics.native_kernels` says where it goes).
    """
    import numba

    module = globals()
    if module.get("numba") is None:
        module["numba"] = numba
        for name, options in _MARKED.items():
            options = {**options, "cache": options.get("cache", False) and disk_cache}
            module[name] = numba.njit(**_NUMBA, **options)(module[name])
    import sys

    return sys.modules[__name__]
