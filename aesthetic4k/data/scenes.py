"""Procedurally rendered scenes for the offline sample set (numpy arithmetic only, no downloads).

Each scene is a deterministic function of (seed, size) with detail at every scale down to the
pixel: fractal noise whose finest octave is one pixel, thousands of anti-aliased strokes (grass,
fur), printed text, window grids, ripples, film grain, next to smooth sky gradients. That is
what separates a sharp image from an upscaled one under the detail metrics (GLCM Score,
Compression Ratio), which is the point of a smoke-test set.

Every pixel is defined by this project alone: the drawing, the font, the resampling, the random
numbers and the trigonometry are our own (:mod:`aesthetic4k.data.raster`, :mod:`aesthetic4k.data.font`),
using only operations IEEE 754 fixes exactly, so no numpy, OpenCV or Pillow release can move the
set; ``tests/test_data_sample.py`` pins a hash of its pixels.

Large structures are laid out in fractions of the image side, so a scene looks the same at
256 px and at 4096 px; only the amount of fine detail grows with the size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from aesthetic4k.data.font import ADVANCE, GLYPH_H, LETTERS, text_mask
from aesthetic4k.data.raster import (PI, Stream, add_grain, cos, draw_ellipses, draw_polyline, draw_segments,
                                     exp_neg, fractal_noise, lerp, log, sin, to_uint8, unit_coordinates,
                                     upsample, vertical_gradient)

RENDERER_VERSION = 2  # bump when any scene changes: the cache folder is keyed by it


def fractal_profile(rng, w: int, base_cells: int = 4, persistence: float = 0.6) -> np.ndarray:
    """1-D fractal curve (a mountain ridge or tree line), zero mean, unit-ish amplitude."""
    return fractal_noise(rng, 1, w, base_cells, persistence)[0] - 0.5


# ---------------------------------------------------------------- scenes

def mountains(rng, s: int) -> np.ndarray:
    sky = vertical_gradient(s, s, [(0.0, (28, 42, 96)), (0.35, (120, 90, 150)), (0.6, (250, 165, 95)),
                                   (1.0, (255, 200, 130))])
    clouds = fractal_noise(rng, s, s, base_cells=3, persistence=0.5, finest=4)
    image = lerp(sky, (255, 150, 170), np.clip((clouds - 0.6) * 2.5, 0, 0.6))
    yy, xx = unit_coordinates(s)
    sun = exp_neg(((xx - 0.68) * (xx - 0.68) + (yy - 0.5) * (yy - 0.5)) / 0.004)
    image = lerp(image, (255, 235, 190), np.clip(sun * 1.5, 0, 1))
    rock = fractal_noise(rng, s, s, base_cells=8, persistence=0.72)
    layers = [(0.42, 0.16, (110, 100, 140), 0.35), (0.55, 0.13, (75, 60, 80), 0.6), (0.72, 0.1, (45, 32, 30), 0.9)]
    rows = np.arange(s, dtype=np.float64)[:, None]
    for index, (base, amplitude, colour, texture) in enumerate(layers):
        ridge = (base + amplitude * fractal_profile(rng, s, base_cells=5, persistence=0.62)) * s
        mask = rows >= ridge[None, :]
        view = (rock, rock.T, rock[::-1])[index]  # distinct texture per layer without wrap-around seams
        shade = (1 - texture) + texture * 2 * view
        fill = np.asarray(colour, np.float64) * shade[..., None]
        if index == 0:  # snow on the far peaks
            snow = (rows - ridge[None, :] < 0.05 * s) & (rock > 0.52)
            fill[snow] = fill[snow] * 0.15 + np.asarray((245, 235, 240), np.float64) * 0.85
        image = np.where(mask[..., None], fill, image)
    return add_grain(image, rng, 3.0)


def meadow(rng, s: int) -> np.ndarray:
    horizon = int(0.32 * s)
    image = vertical_gradient(s, s, [(0.0, (60, 120, 210)), (0.32, (175, 210, 240)), (0.33, (90, 140, 50)),
                                     (1.0, (40, 95, 25))])
    clouds = fractal_noise(rng, s, s, base_cells=4, persistence=0.55, finest=2)
    sky_rows = np.arange(s)[:, None] < horizon
    image = np.where(sky_rows[..., None], lerp(image, (250, 250, 252), np.clip((clouds - 0.55) * 3, 0, 0.9)), image)
    ground = fractal_noise(rng, s, s, base_cells=6, persistence=0.65)
    image = np.where(sky_rows[..., None], image, image * (0.6 + 0.8 * ground)[..., None])
    trees = horizon - (0.02 + 0.05 * (0.5 + fractal_profile(rng, s, base_cells=12, persistence=0.7))) * s
    tree_mask = (np.arange(s)[:, None] >= trees[None, :]) & ~(np.arange(s)[:, None] >= horizon + 2)
    image = np.where(tree_mask[..., None], np.asarray((25, 55, 25), np.float64) * (0.5 + ground)[..., None], image)
    image = np.ascontiguousarray(image)

    count = int(0.012 * s * s)
    y = horizon + (s - horizon) * np.sqrt(rng.random(count))
    x = rng.random(count) * s
    near = (y - horizon) / (s - horizon)
    length = (0.004 + 0.05 * near * np.sqrt(near)) * s * rng.uniform(0.6, 1.4, count)
    angle = rng.normal(0.15, 0.25, count)
    starts = np.stack([x, y], 1)
    ends = starts + np.stack([sin(angle), -cos(angle)], 1) * length[:, None]
    greens = np.array([(70, 140, 40), (110, 170, 60), (40, 100, 30), (150, 190, 80), (90, 120, 40)], np.float64)
    colours = np.clip(greens[rng.integers(0, len(greens), count)] * rng.uniform(0.6, 1.3, (count, 1)), 0, 255)
    order = np.argsort(y, kind="stable")  # far blades first, near blades on top
    draw_segments(image, starts[order], ends[order], colours[order], width=max(1.0, s / 1400))

    flowers = int(300 * (s / 2048) ** 2) + 20
    cy = horizon + (s - horizon) * np.sqrt(np.sqrt(rng.random(flowers)))
    cx = rng.random(flowers) * s
    radius = np.maximum(1.0, (0.001 + 0.006 * (cy - horizon) / (s - horizon)) * s)
    petals = np.array([(250, 220, 40), (250, 250, 245), (160, 90, 200)], np.float64)[rng.integers(0, 3, flowers)]
    order = np.argsort(cy, kind="stable")
    draw_ellipses(image, cx[order], cy[order], radius[order], radius[order], 1.0, 0.0, petals[order],
                  core=(200, 140, 20), core_fraction=0.35)
    return add_grain(image, rng, 3.0)


def fur(rng, s: int) -> np.ndarray:
    yy, xx = unit_coordinates(s)
    low = fractal_noise(rng, s, s, base_cells=3, persistence=0.5, finest=8)
    stripes = 0.5 + 0.5 * sin((xx * 0.8 + yy * 0.25) * (2 * PI * 5) + 6 * low)
    base = lerp((95, 50, 20), (225, 140, 60), stripes)
    white = np.clip((fractal_noise(rng, s, s, base_cells=2, persistence=0.4, finest=16) - 0.62) * 6, 0, 1)
    base = lerp(base, (245, 235, 220), white)
    image = np.ascontiguousarray(base * (0.75 + 0.5 * fractal_noise(rng, s, s, 16, 0.7))[..., None])
    flow = PI / 2 + 1.2 * (low - 0.5)

    count = int(0.012 * s * s)
    for brightness, scale in [(0.75, 1.0), (1.12, 0.8)]:
        px = rng.random(count) * s
        py = rng.random(count) * s
        ix, iy = px.astype(np.int64), py.astype(np.int64)
        theta = flow[iy, ix] + rng.normal(0, 0.12, count)
        length = s / 70 * scale * rng.uniform(0.6, 1.4, count)
        starts = np.stack([px, py], 1)
        ends = starts + np.stack([cos(theta), sin(theta)], 1) * length[:, None]
        colours = base[iy, ix] * brightness * rng.uniform(0.8, 1.2, (count, 1))
        draw_segments(image, starts, ends, np.clip(colours, 0, 255))
    for _ in range(6):  # long whiskers
        turns = rng.normal(0, 0.03, 40)
        heading = np.empty(40)
        heading[0] = rng.uniform(0, 2 * PI) + turns[0]
        for k in range(1, 40):  # a running sum, added in order
            heading[k] = heading[k - 1] + turns[k]
        steps = np.stack([cos(heading), sin(heading)], 1) * (s / 60)
        points = np.concatenate([rng.random((1, 2)) * s, np.zeros((40, 2))])
        for k in range(40):
            points[k + 1] = points[k] + steps[k]
        draw_polyline(image, points, (250, 248, 240), width=max(1.0, s / 700))
    return add_grain(image, rng, 2.5)


def newspaper(rng, s: int) -> np.ndarray:
    yy, xx = unit_coordinates(s)
    streaks = upsample(rng.normal(shape=(max(8, s // 4), max(8, s // 64))), s, s)
    rings = 0.5 + 0.5 * sin(2 * PI * 30 * (xx + 0.03 * fractal_noise(rng, s, s, 3, 0.5, 4)) + streaks)
    image = lerp((95, 55, 30), (160, 105, 60), rings) * (0.9 + 0.1 * streaks[..., None].clip(-2, 2))
    left, top, right, bottom = int(0.08 * s), int(0.06 * s), int(0.93 * s), int(0.96 * s)
    paper = np.asarray((236, 230, 212), np.float64) * (0.93 + 0.1 * fractal_noise(rng, bottom - top, right - left, 12, 0.7))[..., None]
    image[top:bottom, left:right] = paper
    shadow = np.clip(1 - np.abs(xx - 0.5) * 0.3, 0.8, 1)
    image = image * shadow[..., None]
    picture = (left + int(0.03 * s), top + int(0.11 * s), left + int(0.25 * s), top + int(0.36 * s))
    hills = fractal_noise(rng, picture[3] - picture[1], picture[2] - picture[0], 4, 0.65)
    image[picture[1]:picture[3], picture[0]:picture[2]] = (40 + 170 * hills)[..., None]

    scale = s / 2048
    margin = int(0.03 * s)
    head_cell = 6.0 * scale
    lines = [("THE DAILY CHRONICLE", left + margin, top + int(0.07 * s) - GLYPH_H * head_cell, head_cell)]
    cell = 1.4 * scale
    columns = 3
    column_width = (right - left - 2 * margin) / columns
    line_height = max(3, int(18 * scale))
    fits = max(4, int((column_width - margin) / (ADVANCE * cell)))
    for column in range(columns):
        x0 = int(left + margin + column * column_width)
        y = top + int(0.12 * s) if column else picture[3] + line_height * 2
        while y < bottom - margin:
            lengths = rng.integers(2, 10, 12)
            letters = rng.integers(0, len(LETTERS), int(lengths.sum()))
            words, at = [], 0
            for n in lengths:
                words.append("".join(LETTERS[i] for i in letters[at:at + n]))
                at += n
            lines.append((" ".join(words)[:fits].rstrip(), x0, y - GLYPH_H * cell, cell))
            y += line_height
    ink = text_mask(s, s, lines)
    rule = (np.abs(np.arange(s) - (top + int(0.09 * s)))[:, None] <= max(0.5, scale)) & \
        (np.arange(s)[None, :] >= left + margin) & (np.arange(s)[None, :] <= right - margin)
    ink = np.maximum(ink, rule)
    image = lerp(image, (30, 28, 28), ink)
    dx, dy = xx - 0.72, yy - 0.78
    ring = np.abs(np.sqrt(dx * dx + dy * dy) - 0.07) / 0.004
    image = image * (1 - 0.25 * exp_neg(ring * ring))[..., None]
    return add_grain(image, rng, 2.0)


def skyline(rng, s: int) -> np.ndarray:
    image = vertical_gradient(s, s, [(0.0, (20, 15, 60)), (0.45, (110, 60, 130)), (0.75, (250, 140, 80)),
                                     (1.0, (255, 190, 120))])
    stars = rng.random((s, s)) > 1 - 0.0008
    stars[int(0.35 * s):] = False
    image[stars] = 240
    texture = fractal_noise(rng, s, s, 24, 0.75)
    antennas = []
    x = 0
    while x < s:
        width = int(rng.uniform(0.04, 0.11) * s)
        height = int(rng.uniform(0.25, 0.8) * s)
        x0, x1, y0 = x, min(s, x + width), s - height
        facade = rng.uniform(40, 90, 3)
        block = facade * (0.5 + texture[y0:, x0:x1])[..., None]
        pitch_x = max(3, int(rng.uniform(0.006, 0.012) * s))
        pitch_y = max(3, int(rng.uniform(0.008, 0.014) * s))
        ly, lx = np.mgrid[0:s - y0, 0:x1 - x0]
        window = ((lx % pitch_x) * 5 < pitch_x * 3) & ((ly % pitch_y) * 20 < pitch_y * 11) & (ly > pitch_y)
        lit_grid = rng.random(((s - y0) // pitch_y + 1, (x1 - x0) // pitch_x + 1))
        lit = lit_grid[ly // pitch_y, lx // pitch_x]
        warm = np.stack([255 * (0.8 + 0.2 * lit), 200 * (0.7 + 0.3 * lit), 90 + 60 * lit], -1)
        block = np.where((window & (lit > 0.55))[..., None], warm, block)
        block = np.where((window & (lit <= 0.55))[..., None], block * 0.6 + 10, block)
        image[y0:, x0:x1] = block
        if rng.random() < 0.4:
            mid = x0 + (x1 - x0) // 2
            antennas.append(((mid, y0), (mid, int(y0 - 0.05 * s))))
        x = x1 + int(rng.uniform(0, 0.01) * s)
    if antennas:
        ends = np.array(antennas, np.float64)
        draw_segments(image, ends[:, 0], ends[:, 1], (40, 30, 40), width=max(1.0, s / 1000))
    return add_grain(np.ascontiguousarray(image), rng, 3.0)


def ocean(rng, s: int) -> np.ndarray:
    horizon = int(0.4 * s)
    image = vertical_gradient(s, s, [(0.0, (50, 110, 200)), (0.4, (200, 225, 245)), (0.401, (40, 95, 150)),
                                     (1.0, (10, 45, 90))])
    clouds = fractal_noise(rng, s, s, base_cells=3, persistence=0.62)
    cover = np.clip((clouds - 0.55) * 5, 0, 1)
    sky = np.arange(s)[:, None] < horizon
    image = np.where(sky[..., None], lerp(image, (252, 252, 255), cover * (0.7 + 0.6 * (clouds - 0.5))), image)
    yy, xx = unit_coordinates(s)
    depth = np.clip((yy - 0.4) / 0.6, 0, 1) + 0.02
    waves = np.zeros((s, s), np.float64)
    for index in range(5):
        angle = rng.uniform(-0.5, 0.5)
        frequency = rng.uniform(8, 22) * (1 + index)
        phase = xx * float(sin(angle)) + log(depth) * (0.05 * float(cos(angle))) + 0.02 * xx / depth
        waves += sin(2 * PI * frequency * phase + rng.uniform(0, 2 * PI)) / (1 + index)
    detail = fractal_noise(rng, s, s, base_cells=16, persistence=0.7)
    waves = waves / 2.5 + 1.2 * (detail - 0.5)
    water = image * (0.8 + 0.35 * waves)[..., None]
    foam = np.clip((waves - 0.75) * 4, 0, 1) * (depth > 0.1)
    water = lerp(water, (235, 240, 245), foam)
    sheen = (xx - 0.6) / 0.12
    glint = (rng.random((s, s)) < 0.02 * exp_neg(sheen * sheen)) & (waves > 0.3)
    water[glint] = 255
    image = np.where(sky[..., None], image, water)
    return add_grain(image, rng, 2.5)


def autumn_leaves(rng, s: int) -> np.ndarray:
    soil = fractal_noise(rng, s, s, base_cells=10, persistence=0.7)
    image = np.ascontiguousarray(np.asarray((60, 40, 25), np.float64) * (0.5 + soil)[..., None])
    scale = s / 2048
    twigs = int(60 * scale ** 2) + 5
    starts = rng.random((twigs, 2)) * s
    angle = rng.uniform(0, PI, twigs)
    length = rng.uniform(0.05, 0.2, twigs) * s
    ends = starts + np.stack([cos(angle), sin(angle)], 1) * length[:, None]
    widths = np.maximum(1.0, np.floor(rng.uniform(2, 6, twigs) * scale + 0.5))
    for width in sorted(set(widths.tolist())):  # one colour: only the width needs its own pass
        draw_segments(image, starts[widths == width], ends[widths == width], (45, 30, 20), width=width)
    palette = np.array([(190, 40, 20), (230, 110, 20), (240, 190, 40), (140, 80, 30), (170, 60, 30)], np.float64)
    count = int(2500 * scale ** 2) + 40
    cx, cy = rng.random(count) * s, rng.random(count) * s
    major = np.maximum(2.0, rng.uniform(0.015, 0.035, count) * s)
    minor = np.maximum(1.0, major * rng.uniform(0.35, 0.55, count))
    angle = rng.uniform(0, PI, count)
    colour = np.clip(palette[rng.integers(0, len(palette), count)] * rng.uniform(0.7, 1.15, (count, 1)), 0, 255)
    draw_ellipses(image, cx, cy, major, minor, cos(angle), sin(angle), colour, edge=colour * 0.55,
                  edge_width=1.0, vein=True)
    pebbles = int(400 * scale ** 2) + 5
    px, py = rng.random(pebbles) * s, rng.random(pebbles) * s
    radius = np.maximum(1.0, rng.uniform(2, 7, pebbles) * scale)
    grey = rng.uniform(90, 170, pebbles)
    draw_ellipses(image, px, py, radius, radius, 1.0, 0.0, np.stack([grey, grey, grey * 0.95], 1))
    image *= (0.8 + 0.4 * fractal_noise(rng, s, s, base_cells=64, persistence=0.8))[..., None]
    return add_grain(image, rng, 3.0)


def dunes(rng, s: int) -> np.ndarray:
    horizon = 0.33
    image = vertical_gradient(s, s, [(0.0, (120, 170, 220)), (horizon, (235, 225, 210)), (horizon + 0.001, (210, 160, 100)),
                                     (1.0, (190, 130, 70))])
    yy, xx = unit_coordinates(s)
    height = fractal_noise(rng, s, s, base_cells=3, persistence=0.45, finest=64)  # smooth: its own low-pass
    gy, gx = np.zeros_like(height), np.zeros_like(height)
    gy[1:-1] = (height[2:] - height[:-2]) * 0.5
    gx[:, 1:-1] = (height[:, 2:] - height[:, :-2]) * 0.5
    light = np.clip(0.9 + (gx * 0.8 - gy * 0.6) * s * 0.2, 0.5, 1.2)  # slope term has std ~1
    period = max(4.0, s / 200)
    warp = fractal_noise(rng, s, s, base_cells=12, persistence=0.6, finest=4)
    ripples = sin(2 * PI * (xx * 0.8 + yy * 0.6) * (s / period) + 10 * warp)
    sand = image * (light * (1 + 0.08 * ripples))[..., None]
    sand = add_grain(sand, rng, 5.0)
    image = np.where((yy >= horizon)[..., None], sand, image)
    return add_grain(image, rng, 1.5)


@dataclass(frozen=True)
class Scene:
    stem: str
    render: Callable
    caption: str


SCENES = [
    Scene("sample_01_mountains", mountains,
          "Jagged snow-capped mountain ridges fading into layered purple haze beneath a glowing orange sunset "
          "sky, with rough rocky slopes in the foreground catching the last warm light of evening."),
    Scene("sample_02_meadow", meadow,
          "A lush green meadow of dense wind-swept grass dotted with small yellow, white and purple wildflowers, "
          "a dark tree line on the horizon under a bright blue sky with soft white clouds."),
    Scene("sample_03_fur", fur,
          "Extreme close-up of a ginger tabby cat's fur, thousands of fine hairs flowing in soft waves with dark "
          "brown stripes, white tufts and a few long pale whiskers crossing the frame."),
    Scene("sample_04_newspaper", newspaper,
          "An old newspaper lying on a warm wooden desk, dense columns of tiny printed text, a bold masthead, a "
          "small black and white landscape photograph and a faint coffee ring stain on the paper."),
    Scene("sample_05_skyline", skyline,
          "A city skyline at dusk, tall office towers with grids of lit yellow windows against a purple and "
          "orange gradient sky, thin rooftop antennas and the first stars appearing above."),
    Scene("sample_06_ocean", ocean,
          "Deep blue ocean waves rolling toward the viewer under a bright sky with billowing white clouds, foam "
          "crests and glittering sunlight reflections scattered across the water surface."),
    Scene("sample_07_leaves", autumn_leaves,
          "A forest floor covered in fallen autumn leaves in red, orange, yellow and brown, each leaf with a dark "
          "vein, scattered twigs and small grey pebbles on dark damp soil."),
    Scene("sample_08_dunes", dunes,
          "Golden sand dunes under a pale blue sky, smooth sunlit slopes and shadowed faces covered in fine "
          "wind-carved ripples stretching toward a hazy horizon."),
]


def render_scene(index: int, size: int, seed: int = 0) -> np.ndarray:
    """Scene ``index`` of :data:`SCENES` as a size x size x 3 uint8 RGB array, bit-identical per (seed, size)."""
    rng = Stream(seed, index, RENDERER_VERSION)
    image = SCENES[index].render(rng, size)
    assert image.shape == (size, size, 3), (SCENES[index].stem, image.shape)
    return to_uint8(image)
