"""Bit-exact drawing for the sample set: every pixel is defined by this module, not by a library release.

Only operations whose results IEEE 754 fixes exactly are used on the pixel path: integer arithmetic
(wrapping uint64 hashing, integer sums) and float64 ``+ - * /``, ``sqrt``, ``floor``, comparisons,
``clip``, gathers, each a separate numpy ufunc call in a fixed order. Transcendental functions are
our own polynomials (libm's ``sin``/``exp`` may differ by an ulp between builds); no float reduction
(``sum``, ``mean``, ``dot``) decides a pixel, since their summation order is numpy's to change;
random numbers come from an integer hash, not from a ``Generator`` stream.
"""
from __future__ import annotations

import math

import numpy as np

PI = 3.141592653589793
TAU = 6.283185307179586
_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


# ---------------------------------------------------------------- random numbers

def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijective avalanche on uint64 (numpy arrays wrap on overflow)."""
    x = (x ^ (x >> _U64(30))) * _M1
    x = (x ^ (x >> _U64(27))) * _M2
    return x ^ (x >> _U64(31))


class Stream:
    """Counter-based random numbers: draw ``k`` of a stream is hash(key, k, element index), nothing else."""

    def __init__(self, *key: int):
        state = np.zeros(1, np.uint64)
        for part in key:
            state = _mix(state ^ _U64(int(part) & 0xFFFFFFFFFFFFFFFF)) + _GOLDEN
        self._key = state
        self._draws = 0

    def bits(self, shape) -> np.ndarray:
        self._draws += 1
        count = int(np.prod(shape, dtype=np.int64)) if shape != () else 1
        base = _mix(self._key + np.full(1, self._draws, np.uint64) * _GOLDEN)
        return _mix(np.arange(count, dtype=np.uint64) * _GOLDEN + base).reshape(shape)

    def random(self, shape=None):
        """Uniform in [0, 1) with 53 random bits (exact: an integer times a power of two)."""
        values = (self.bits(() if shape is None else shape) >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
        return float(values.reshape(-1)[0]) if shape is None else values

    def uniform(self, low, high, shape=None):
        return low + (high - low) * self.random(shape)

    def normal(self, mean=0.0, sd=1.0, shape=None):
        """Approximately normal: the centred sum of the four 16-bit fields of one hash (Irwin-Hall),
        scaled to unit variance; the integer sum is exact."""
        bits = np.ascontiguousarray(self.bits(() if shape is None else shape))
        # the four 16-bit fields, summed as integers (exact; their order in memory does not matter)
        total = bits.reshape(-1, 1).view(np.uint16).sum(axis=1, dtype=np.int64).reshape(bits.shape)
        z = (total.astype(np.float64) * (1.0 / 65536.0) - (2.0 - 2.0 / 65536.0)) * 1.7320508075688772
        z = mean + sd * z
        return float(z.reshape(-1)[0]) if shape is None else z

    def integers(self, low: int, high: int, shape=None):
        """Whole numbers in [low, high) (the modulo bias is below 2^-40 for the ranges used here)."""
        values = (self.bits(() if shape is None else shape) % _U64(high - low)).astype(np.int64) + low
        return int(values.reshape(-1)[0]) if shape is None else values


# ---------------------------------------------------------------- functions of our own

def sin(x) -> np.ndarray:
    """sin to ~1e-11 from a Taylor polynomial on [-pi/2, pi/2] after explicit range reduction."""
    x = np.asarray(x, np.float64)
    r = x - np.floor(x * (1.0 / TAU) + 0.5) * TAU           # [-pi, pi]
    r = np.where(r > PI / 2, PI - r, np.where(r < -PI / 2, -PI - r, r))
    r2 = r * r
    p = -7.647163731819816e-13                               # -1/15!, then Horner down to 1
    for c in (1.6059043836821613e-10, -2.505210838544172e-08, 2.7557319223985893e-06,
              -0.0001984126984126984, 0.008333333333333333, -0.16666666666666666, 1.0):
        p = p * r2 + c
    return r * p


def cos(x) -> np.ndarray:
    return sin(np.asarray(x, np.float64) + PI / 2)


def exp_neg(z) -> np.ndarray:
    """exp(-z) for z >= 0 (relative error ~1e-4): a Taylor polynomial at z/64, squared six times."""
    t = -np.clip(np.asarray(z, np.float64), 0.0, 60.0) * (1.0 / 64.0)
    p = 1.0 / 40320.0
    for c in (1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0):
        p = p * t + c
    for _ in range(6):
        p = p * p
    return p


def log(x) -> np.ndarray:
    """Natural log for x > 0 (~1e-13): exact frexp split, then the atanh series of the mantissa."""
    mantissa, exponent = np.frexp(np.asarray(x, np.float64))   # x = m 2^e, m in [0.5, 1)
    z = (mantissa - 1.0) / (mantissa + 1.0)                       # |z| <= 1/3
    z2 = z * z
    p = 1.0 / 25.0
    for k in range(23, 0, -2):
        p = p * z2 + 1.0 / k
    return 2.0 * z * p + exponent * 0.6931471805599453


def quantised_mean_std(values: np.ndarray, unit: float = 4096.0) -> tuple[float, float]:
    """Mean and standard deviation of ``values`` rounded to 1/unit, from exact integer sums."""
    q = np.floor(values * unit + 0.5).astype(np.int64)
    n = q.size
    total, squares = int(q.sum()), int((q * q).sum())       # integer sums: any order gives the same
    mean = total / n
    variance = max(squares / n - mean * mean, 0.0)
    return mean / unit, math.sqrt(variance) / unit


# ---------------------------------------------------------------- resampling

def _cubic_taps(count: int, length: int):
    """Catmull-Rom taps placing ``count`` grid points over ``length`` pixel centres."""
    u = (np.arange(length, dtype=np.float64) + 0.5) * ((count - 1) / length)
    i = np.floor(u)
    t = u - i
    i = i.astype(np.int64)
    index = [np.clip(i + k, 0, count - 1) for k in (-1, 0, 1, 2)]
    weights = [((-0.5 * t + 1.0) * t - 0.5) * t, (1.5 * t - 2.5) * t * t + 1.0,
               ((-1.5 * t + 2.0) * t + 0.5) * t, (0.5 * t - 0.5) * t * t]
    return index, weights


def upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """A small 2-D grid stretched over h x w pixels: separable cubic interpolation, fixed order."""
    (c0, c1, c2, c3), (w0, w1, w2, w3) = _cubic_taps(grid.shape[1], w)
    rows = grid[:, c0] * w0 + grid[:, c1] * w1 + grid[:, c2] * w2 + grid[:, c3] * w3
    (r0, r1, r2, r3), (v0, v1, v2, v3) = _cubic_taps(grid.shape[0], h)
    return (rows[r0] * v0[:, None] + rows[r1] * v1[:, None] + rows[r2] * v2[:, None]
            + rows[r3] * v3[:, None])


def _refine(grid: np.ndarray, axis: int) -> np.ndarray:
    """Double a grid's resolution along ``axis``: keep its points, insert 4-point cubic midpoints."""
    p = np.moveaxis(grid, axis, 0)
    n = p.shape[0]
    if n < 2:
        return grid
    index = np.arange(n - 1)
    before, after = p[np.maximum(index - 1, 0)], p[np.minimum(index + 2, n - 1)]
    middle = ((p[:-1] + p[1:]) * 9.0 - (before + after)) * 0.0625
    out = np.empty((2 * n - 1,) + p.shape[1:], np.float64)
    out[0::2], out[1::2] = p, middle
    return np.moveaxis(out, 0, axis)


def fractal_noise(rng: Stream, h: int, w: int, base_cells: int = 3, persistence: float = 0.55,
                  finest: int = 1) -> np.ndarray:
    """Sum of noise octaves from ``base_cells`` across the image down to ``finest`` pixels, ~N(0.5, 0.18).

    Octaves are summed on a grid that is refined (doubled) before each finer octave is added, and
    the result is stretched over the image once: one full-size pass instead of one per octave."""
    side = max(h, w)
    grid = rng.normal(shape=(max(1, round(base_cells * h / side)) + 1, max(1, round(base_cells * w / side)) + 1))
    amplitude, cells = persistence, base_cells * 2
    while side / cells >= finest * 2:
        grid = _refine(_refine(grid, 0), 1)
        grid = grid + amplitude * rng.normal(shape=grid.shape)
        amplitude *= persistence
        cells *= 2
    total = upsample(grid, h, w)
    if finest <= 1:  # the last octave: independent pixels
        total = total + amplitude * rng.normal(shape=(h, w))
    mean, std = quantised_mean_std(total)
    return 0.5 + (0.18 / (std + 1e-6)) * (total - mean)


# ---------------------------------------------------------------- anti-aliased shapes

def _expand(counts: np.ndarray):
    """For items with ``counts`` samples each: (item of every sample, its index within the item)."""
    counts = np.maximum(counts.astype(np.int64), 0)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum()), dtype=np.int64) - starts[owner]


_BUFFERS: dict = {}


def _owner_buffer(size: int) -> np.ndarray:
    """A reusable all -1 int64 array (one image's worth): filling a fresh one per chunk costs more than drawing."""
    if _BUFFERS.get("size") != size:
        _BUFFERS.clear()
        _BUFFERS.update(size=size, array=np.full(size, -1, np.int64))
    return _BUFFERS["array"]


def _composite(canvas: np.ndarray, ys, xs, owner, alpha, colour_of, shared: bool = False) -> None:
    """Blend samples into canvas: where shapes overlap, the one drawn last (highest owner) wins the pixel.

    ``colour_of(indices)``: the colours of those samples, asked for the winning samples only.
    ``shared``: an owner may have several samples on one pixel (the joints of a polyline, one colour);
    they count once, with their best coverage."""
    h, w = canvas.shape[:2]
    alpha = np.floor(alpha * 256.0 + 0.5) * (1.0 / 256.0)     # coverage in 1/256 steps
    index = np.flatnonzero((alpha > 0) & (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w))
    pixel, owner, alpha = ys[index] * w + xs[index], owner[index], alpha[index]
    top = _owner_buffer(h * w)
    np.maximum.at(top, pixel, owner)                          # integer max: order-free
    win = top[pixel] == owner
    top[pixel] = -1                                           # reset only what was touched
    pixel, alpha, index = pixel[win], alpha[win], index[win]
    if shared:
        best = np.zeros(h * w, np.float64)
        np.maximum.at(best, pixel, alpha)                     # max is exact in any order
        pixel, unique = np.unique(pixel, return_index=True)
        alpha, index = best[pixel], index[unique]
    alpha = alpha[:, None]
    flat = canvas.reshape(-1, canvas.shape[2])
    flat[pixel] = flat[pixel] * (1.0 - alpha) + colour_of(index) * alpha


def draw_segments(canvas: np.ndarray, starts: np.ndarray, ends: np.ndarray, colours: np.ndarray,
                  width: float = 1.0, chunk: int = 4096, joined: bool = False) -> None:
    """Anti-aliased round-capped line segments (x, y in pixels, centres at integers), in order.

    ``joined``: the segments form one shape (a polyline of one colour, drawn in one chunk)."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    colours = np.broadcast_to(np.asarray(colours, np.float64), (len(starts), canvas.shape[2]))
    half = width / 2.0
    reach = int(math.ceil(half * 1.5 + 1.0))
    for first in range(0, len(starts), chunk):
        a, b, col = starts[first:first + chunk], ends[first:first + chunk], colours[first:first + chunk]
        d = b - a
        steep = np.abs(d[:, 1]) > np.abs(d[:, 0])
        # work in (major, minor) coordinates: x-major segments as they are, y-major ones swapped
        am = np.where(steep, a[:, 1], a[:, 0])
        an = np.where(steep, a[:, 0], a[:, 1])
        dm = np.where(steep, d[:, 1], d[:, 0])
        dn = np.where(steep, d[:, 0], d[:, 1])
        low = np.floor(np.minimum(am, am + dm) - half - 1.0)
        high = np.ceil(np.maximum(am, am + dm) + half + 1.0)
        owner, step = _expand(high - low + 1)
        major = low[owner] + step
        slope = dn / np.where(dm == 0, 1.0, dm)
        length2 = dm * dm + dn * dn
        # per step of the major axis: the segment's numbers, gathered once and broadcast over the minor offsets
        am_s, an_s, dm_s, dn_s = am[owner], an[owner], dm[owner], dn[owner]
        along = np.clip(major - am_s, np.minimum(0.0, dm_s), np.maximum(0.0, dm_s))
        centre = np.floor(an_s + along * slope[owner] + 0.5)
        offsets = np.arange(-reach, reach + 1, dtype=np.float64)
        minor = centre[:, None] + offsets[None, :]
        # distance from the pixel centre to the segment
        pm, pn = (major - am_s)[:, None], minor - an_s[:, None]
        dm_s, dn_s = dm_s[:, None], dn_s[:, None]
        t = np.clip((pm * dm_s + pn * dn_s) / np.where(length2 == 0, 1.0, length2)[owner][:, None], 0.0, 1.0)
        em, en = pm - t * dm_s, pn - t * dn_s
        coverage = np.clip(half + 0.5 - np.sqrt(em * em + en * en), 0.0, 1.0)
        s = steep[owner][:, None]
        xs = np.where(s, minor, major[:, None]).astype(np.int64)
        ys = np.where(s, major[:, None], minor).astype(np.int64)
        owners = np.broadcast_to(owner[:, None], minor.shape).ravel()
        shape = np.zeros_like(owners) if joined else owners + first
        _composite(canvas, ys.ravel(), xs.ravel(), shape, coverage.ravel(),
                   lambda index, owners=owners, col=col: col[owners[index]], shared=joined)


def draw_polyline(canvas, points, colour, width=1.0) -> None:
    points = np.asarray(points, np.float64)
    draw_segments(canvas, points[:-1], points[1:], colour, width, chunk=len(points), joined=True)


def draw_ellipses(canvas: np.ndarray, cx, cy, a, b, cos_t, sin_t, fill, edge=None, edge_width: float = 0.0,
                  core=None, core_fraction: float = 0.0, vein: bool = False, chunk: int = 512) -> None:
    """Anti-aliased filled ellipses, in order: semi-axes ``a`` (along angle t) and ``b``.

    ``edge``: colour of an outline ``edge_width`` px wide inside the rim; ``core``: colour of a
    concentric ellipse ``core_fraction`` of the size (a flower's heart); ``vein``: an ``edge``-coloured
    1 px line along the major axis (a leaf's midrib)."""
    n = len(cx)
    arrays = [np.broadcast_to(np.asarray(v, np.float64), (n,)) for v in (cx, cy, a, b, cos_t, sin_t)]
    fill = np.broadcast_to(np.asarray(fill, np.float64), (n, canvas.shape[2]))
    edge = fill if edge is None else np.broadcast_to(np.asarray(edge, np.float64), (n, canvas.shape[2]))
    core = fill if core is None else np.broadcast_to(np.asarray(core, np.float64), (n, canvas.shape[2]))
    for first in range(0, n, chunk):
        x0, y0, ea, eb, c, s = (v[first:first + chunk] for v in arrays)
        # implicit form A x^2 + B x y + C y^2 = 1 of the rotated ellipse
        ia, ib = 1.0 / (ea * ea), 1.0 / (eb * eb)
        qa = c * c * ia + s * s * ib
        qb = 2.0 * c * s * (ia - ib)
        qc = s * s * ia + c * c * ib
        extent = np.sqrt(ea * ea * s * s + eb * eb * c * c)
        top = np.floor(y0 - extent - 1.0)
        owner, row = _expand(np.floor(y0 + extent + 1.0) - top + 1)
        y = top[owner] + row
        v = y - y0[owner]
        disc = np.maximum(qb[owner] * qb[owner] * v * v - 4.0 * qa[owner] * (qc[owner] * v * v - 1.0), 0.0)
        root = np.sqrt(disc)
        left = np.floor(x0[owner] + (-qb[owner] * v - root) / (2.0 * qa[owner]) - 1.5)
        right = np.ceil(x0[owner] + (-qb[owner] * v + root) / (2.0 * qa[owner]) + 1.5)
        span_owner, column = _expand(right - left + 1)
        owner = owner[span_owner]
        x, y = left[span_owner] + column, y[span_owner]
        u, v = x - x0[owner], y - y0[owner]
        along, across = u * c[owner] + v * s[owner], v * c[owner] - u * s[owner]
        fa, fb = along / ea[owner], across / eb[owner]
        f = fa * fa + fb * fb
        ga, gb = fa / ea[owner], fb / eb[owner]
        gradient = 2.0 * np.sqrt(ga * ga + gb * gb)
        distance = (f - 1.0) / np.maximum(gradient, 1e-9)      # signed, in pixels, >0 outside
        alpha = np.clip(0.5 - distance, 0.0, 1.0)
        parts = (fill[first:first + chunk], edge[first:first + chunk], core[first:first + chunk],
                 np.minimum(ea, eb), ea)

        def colour_of(index, owner=owner, f=f, along=along, across=across, distance=distance, parts=parts):
            fills, edges, cores, smaller, semi = parts
            own = owner[index]
            colour = fills[own]
            if core_fraction > 0:
                core_distance = (np.sqrt(f[index]) - core_fraction) * smaller[own]
                t = np.clip(0.5 - core_distance, 0.0, 1.0)[:, None]
                colour = colour + (cores[own] - colour) * t
            if vein:
                t = (np.clip(1.0 - np.abs(across[index]), 0.0, 1.0) * (np.abs(along[index]) < semi[own]))[:, None]
                colour = colour + (edges[own] - colour) * t
            if edge_width > 0:
                t = np.clip(0.5 + edge_width + distance[index], 0.0, 1.0)[:, None]
                colour = colour + (edges[own] - colour) * t
            return colour

        _composite(canvas, y.astype(np.int64), x.astype(np.int64), owner + first, alpha, colour_of)


def fill_rectangles(mask: np.ndarray, x0, y0, size: float) -> None:
    """Add the exact area coverage of axis-aligned squares (side ``size`` px, not overlapping) to ``mask``.

    ``mask`` is int64 in units of 1/4096 of a pixel: integer sums are exact in any order."""
    h, w = mask.shape
    x0, y0 = np.asarray(x0, np.float64), np.asarray(y0, np.float64)
    reach = int(math.ceil(size)) + 1
    ox = np.floor(x0)[:, None, None] + np.arange(reach, dtype=np.float64)[None, None, :]
    oy = np.floor(y0)[:, None, None] + np.arange(reach, dtype=np.float64)[None, :, None]
    cover_x = np.clip(np.minimum(x0[:, None, None] + size, ox + 1.0) - np.maximum(x0[:, None, None], ox), 0.0, 1.0)
    cover_y = np.clip(np.minimum(y0[:, None, None] + size, oy + 1.0) - np.maximum(y0[:, None, None], oy), 0.0, 1.0)
    amount = np.floor(cover_x * cover_y * 4096.0 + 0.5).astype(np.int64)
    xs = np.broadcast_to(ox, amount.shape).astype(np.int64)
    ys = np.broadcast_to(oy, amount.shape).astype(np.int64)
    keep = (amount > 0) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    np.add.at(mask.reshape(-1), (ys * w + xs)[keep], amount[keep])


# ---------------------------------------------------------------- images

def vertical_gradient(h: int, w: int, stops) -> np.ndarray:
    """H x W x 3 image blending colour stops ``[(position 0..1, (r, g, b)), ...]`` top to bottom."""
    ys = np.arange(h, dtype=np.float64) / max(h - 1, 1)
    column = np.zeros((h, 3), np.float64)
    for (p0, c0), (p1, c1) in zip(stops[:-1], stops[1:]):
        inside = (ys >= p0) & (ys <= p1)
        t = ((ys[inside] - p0) / (p1 - p0))[:, None]
        column[inside] = np.asarray(c0, np.float64) + (np.asarray(c1, np.float64) - np.asarray(c0, np.float64)) * t
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (h, w, 3)))


def unit_coordinates(s: int):
    """Row and column coordinates in [0, 1) as (s, 1) and (1, s) arrays that broadcast to the image."""
    axis = np.arange(s, dtype=np.float64) / s
    return axis[:, None], axis[None, :]


def lerp(a, b, t):
    """Blend colours/images a and b by t (H x W), broadcasting colours to images."""
    a = np.asarray(a, np.float64)
    out = np.subtract(np.asarray(b, np.float64), a)   # in place from here: same operations, less memory
    out = np.multiply(out, np.asarray(t, np.float64)[..., None], out=out if out.ndim == 3 else None)
    return np.add(out, a, out=out if out.shape == np.broadcast_shapes(out.shape, a.shape) else None)


def add_grain(image: np.ndarray, rng: Stream, strength: float) -> np.ndarray:
    """Luminance film grain: the per-pixel texture every real photograph has."""
    return image + (rng.normal(shape=image.shape[:2]) * strength)[..., None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round half up and clip: exact for every float64 value."""
    return np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)
