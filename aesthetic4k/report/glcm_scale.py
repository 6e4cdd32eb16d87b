"""One colour scale for every GLCM heat map: from 0 to the largest score a 64 x 64 patch can reach.

A patch's GLCM Score (docs/protocol.md s3) is the base-2 entropy of the histogram of distinct values
of its normalised co-occurrence array: 64 x 64 level pairs x 16 (distance, angle) slices, 65,536
cells. ``log2(65536) = 16`` bounds it trivially, but no patch comes near: slice ``s`` holds only
``n_s`` pixel pairs (about 4,000 for 4,096 cells), so most cells share the value 0 or a small
``count / n_s``. The bound used here, derived from those pair totals, is 3.61 bits:

1. Cells of slices with the same pair total ``n`` that hold the same count hold the same value;
   call ``a[n, c]`` the number of such cells (count ``c >= 1``) and ``Z`` the number of empty cells
   of all slices. The score is at most the entropy of the partition {Z} + {a[n, c]} of the 65,536
   cells (equal values from different ``n`` only merge parts, which lowers entropy).
2. The counts obey ``sum_c c * a[n, c] = (slices with total n) * n`` and ``Z + sum a = 65536``.
   Allowing real-valued ``a`` and ``Z`` only enlarges the set, and the entropy is concave in them
   under linear constraints, so the stationary point is the global maximum: ``a[n, c] = Z r_n**c``
   (geometric in the count) with ``Z r_n / (1 - r_n)**2 = slices * n``; ``Z`` solves
   ``Z + sum_n Z r_n / (1 - r_n) = 65536``.

Uniform noise patches score about 3.57 (a Poisson-like count profile, close to the geometric
optimum); the photographs of the sample set stay below 2.3.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from functools import lru_cache

import numpy as np

from aesthetic4k.html_page import new_figure, svg_of

HEAT_COLOURS = "magma"


def slice_pair_totals() -> list[int]:
    """Pixel pairs of each (distance, angle) slice in one 64 x 64 patch, offsets as the metric rounds them."""
    from aesthetic4k_metrics.glcm import PATCH, pixel_offsets

    return [(PATCH - abs(rows)) * (PATCH - abs(cols)) for rows, cols in pixel_offsets()]


def _ratio_for_mass(mass_per_empty: float) -> float:
    """The r in (0, 1) with r / (1 - r)**2 = m: the smaller root of m r^2 - (2m + 1) r + m = 0."""
    m = mass_per_empty
    return ((2 * m + 1) - math.sqrt(4 * m + 1)) / (2 * m)


def entropy_bound(cells: int, masses) -> float:
    """Largest entropy (bits) of cells split into one empty part and parts (group g, count c >= 1).

    ``masses[g]`` is the total count group g must hold (its slices times their pair total). This is
    the relaxed problem of the module docstring, solved in closed form: parts ``Z r_g**c``.
    """
    def filled_cells(empty: float) -> float:
        return sum(empty * r / (1 - r) for r in (_ratio_for_mass(m / empty) for m in masses))

    low, high = 1e-12 * cells, float(cells)   # Z + filled(Z) increases with Z: bisect to `cells`
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if middle + filled_cells(middle) > cells else (middle, high)
    empty = (low + high) / 2
    share = empty / cells
    entropy = -share * math.log2(share)
    for mass in masses:
        r = _ratio_for_mass(mass / empty)
        # sum over c >= 1 of p_c log2 p_c with p_c = share * r**c, in closed form
        entropy -= share * (math.log2(share) * r / (1 - r) + math.log2(r) * r / (1 - r) ** 2)
    return entropy


@lru_cache(maxsize=None)
def max_patch_score() -> float:
    """The largest GLCM Score any 64 x 64 patch can have, in bits (see the module docstring)."""
    from aesthetic4k_metrics.glcm import LEVELS

    totals = slice_pair_totals()
    slices_per_total = Counter(totals)
    return entropy_bound(LEVELS * LEVELS * len(totals), [k * n for n, k in sorted(slices_per_total.items())])


def scale_top() -> float:
    """The top of every heat map's colour scale (the bottom is 0)."""
    return max_patch_score()


def heat_map_png(grid: np.ndarray) -> bytes:
    """The patch grid as a PNG, one pixel per patch, on the fixed scale (dark = flat, bright = detailed)."""
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip(np.asarray(grid, dtype=np.float64) / scale_top(), 0.0, 1.0)
    rgb = (colormaps[HEAT_COLOURS](scaled)[:, :, :3] * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def colour_bar_svg() -> str:
    """The legend of every heat map: the fixed 0 .. max scale with its top value."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    top = scale_top()
    figure = new_figure(4.6, 0.66)
    axes = figure.add_axes([0.03, 0.55, 0.94, 0.28])
    bar = figure.colorbar(ScalarMappable(Normalize(0.0, top), HEAT_COLOURS), cax=axes, orientation="horizontal")
    ticks = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, top]
    bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks[:-1]] + [f"{top:.2f} max"])
    bar.set_label("patch GLCM Score, bits (flat → detailed)", fontsize=8)
    axes.tick_params(labelsize=7)
    return svg_of(figure)
