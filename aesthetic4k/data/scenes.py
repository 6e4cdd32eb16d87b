"""Procedurally rendered scenes for the offline sample set (numpy + OpenCV, no downloads).

Each scene is a deterministic function of (seed, size) with detail at every scale down to the
pixel: fractal noise whose finest octave is one pixel, thousands of anti-aliased strokes (grass,
fur), printed text, window grids, ripples, film grain, next to smooth sky gradients. That is
what separates a sharp image from an upscaled one under the detail metrics (GLCM Score,
Compression Ratio), which is the point of a smoke-test set.

Large structures are laid out in fractions of the image side, so a scene looks the same at
256 px and at 4096 px; only the amount of fine detail grows with the size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

RENDERER_VERSION = 1  # bump when any scene changes: the cache folder is keyed by it


# ---------------------------------------------------------------- building blocks

def _smooth_grid(rng, cells_h: int, cells_w: int, h: int, w: int):
    import cv2

    grid = rng.standard_normal((cells_h + 1, cells_w + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal_noise(rng, h: int, w: int, base_cells: int = 3, persistence: float = 0.55,
                  finest: int = 1) -> np.ndarray:
    """Sum of noise octaves from ``base_cells`` across the image down to ``finest`` pixels, ~N(0.5, 0.18)."""
    side = max(h, w)
    total = np.zeros((h, w), np.float32)
    amplitude, cells = 1.0, base_cells
    while side / cells >= finest * 2:
        total += amplitude * _smooth_grid(rng, max(1, round(cells * h / side)), max(1, round(cells * w / side)), h, w)
        amplitude *= persistence
        cells *= 2
    if finest <= 1:  # the last octave: independent pixels
        total += amplitude * rng.standard_normal((h, w), dtype=np.float32)
    total -= total.mean()
    total /= total.std() + 1e-6
    return 0.5 + 0.18 * total


def fractal_profile(rng, w: int, base_cells: int = 4, persistence: float = 0.6) -> np.ndarray:
    """1-D fractal curve (a mountain ridge or tree line), zero mean, unit-ish amplitude."""
    return fractal_noise(rng, 1, w, base_cells, persistence)[0] - 0.5


def vertical_gradient(h: int, w: int, stops) -> np.ndarray:
    """H x W x 3 float image blending colour stops ``[(position 0..1, (r, g, b)), ...]`` top to bottom."""
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)
    positions = [p for p, _ in stops]
    column = np.stack([np.interp(ys, positions, [c[i] for _, c in stops]) for i in range(3)], axis=1)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :].astype(np.float32), (h, w, 3)))


def unit_coordinates(s: int):
    """Row and column coordinates in [0, 1) as (s, 1) and (1, s) arrays that broadcast to the image."""
    axis = np.arange(s, dtype=np.float32) / s
    return axis[:, None], axis[None, :]


def lerp(a, b, t):
    """Blend colours/images a and b by t (H x W), broadcasting colours to images."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    t = np.asarray(t, np.float32)[..., None]
    return a + (b - a) * t


def draw_strokes(canvas: np.ndarray, starts: np.ndarray, ends: np.ndarray, colors: np.ndarray,
                 thickness: int = 1, levels: int = 6) -> None:
    """Anti-aliased line segments, drawn in bulk: colours quantised to ``levels`` per channel."""
    import cv2

    quant = np.clip(np.round(colors / 255.0 * (levels - 1)), 0, levels - 1).astype(np.int32)
    keys = (quant[:, 0] * levels + quant[:, 1]) * levels + quant[:, 2]
    segments = np.stack([starts, ends], axis=1).round().astype(np.int32)
    order = np.argsort(keys, kind="stable")
    keys, segments, colors = keys[order], segments[order], colors[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for group in np.split(np.arange(len(keys)), bounds):
        if len(group) == 0:
            continue
        colour = tuple(float(c) for c in colors[group].mean(axis=0))
        cv2.polylines(canvas, segments[group], False, colour, thickness, cv2.LINE_AA)


def add_grain(image: np.ndarray, rng, strength: float) -> np.ndarray:
    """Luminance film grain: the per-pixel texture every real photograph has."""
    grain = rng.standard_normal(image.shape[:2], dtype=np.float32) * strength
    return image + grain[..., None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- scenes

def mountains(rng, s: int) -> np.ndarray:
    sky = vertical_gradient(s, s, [(0.0, (28, 42, 96)), (0.35, (120, 90, 150)), (0.6, (250, 165, 95)),
                                   (1.0, (255, 200, 130))])
    clouds = fractal_noise(rng, s, s, base_cells=3, persistence=0.5, finest=4)
    image = lerp(sky, (255, 150, 170), np.clip((clouds - 0.6) * 2.5, 0, 0.6))
    yy, xx = unit_coordinates(s)
    sun = np.exp(-((xx - 0.68) ** 2 + (yy - 0.5) ** 2) / 0.004)
    image = lerp(image, (255, 235, 190), np.clip(sun * 1.5, 0, 1))
    rock = fractal_noise(rng, s, s, base_cells=8, persistence=0.72)
    layers = [(0.42, 0.16, (110, 100, 140), 0.35), (0.55, 0.13, (75, 60, 80), 0.6), (0.72, 0.1, (45, 32, 30), 0.9)]
    for index, (base, amplitude, colour, texture) in enumerate(layers):
        ridge = (base + amplitude * fractal_profile(rng, s, base_cells=5, persistence=0.62)) * s
        mask = (np.arange(s, dtype=np.float32)[:, None] >= ridge[None, :]).astype(np.float32)
        view = (rock, rock.T, rock[::-1])[index]  # distinct texture per layer without wrap-around seams
        shade = (1 - texture) + texture * 2 * view
        fill = np.asarray(colour, np.float32) * shade[..., None]
        if index == 0:  # snow on the far peaks
            depth = np.arange(s, dtype=np.float32)[:, None] - ridge[None, :]
            snow = (depth < 0.05 * s) & (rock > 0.52)
            fill[snow] = fill[snow] * 0.15 + np.asarray((245, 235, 240), np.float32) * 0.85
        image = np.where(mask[..., None] > 0, fill, image)
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
    image = np.where(tree_mask[..., None], np.asarray((25, 55, 25), np.float32) * (0.5 + ground)[..., None], image)
    image = np.ascontiguousarray(image.astype(np.float32))

    count = int(0.025 * s * s)
    y = horizon + (s - horizon) * np.sqrt(rng.random(count))
    x = rng.random(count) * s
    near = (y - horizon) / (s - horizon)
    length = (0.004 + 0.05 * near ** 1.5) * s * rng.uniform(0.6, 1.4, count)
    angle = rng.normal(0.15, 0.25, count)
    starts = np.stack([x, y], 1)
    ends = starts + np.stack([np.sin(angle), -np.cos(angle)], 1) * length[:, None]
    greens = np.array([(70, 140, 40), (110, 170, 60), (40, 100, 30), (150, 190, 80), (90, 120, 40)], np.float32)
    colors = greens[rng.integers(0, len(greens), count)] * rng.uniform(0.6, 1.3, (count, 1))
    order = np.argsort(y)  # far blades first, near blades on top, in bands
    for band in np.array_split(order, 6):
        draw_strokes(image, starts[band], ends[band], np.clip(colors[band], 0, 255),
                     thickness=max(1, s // 1400))
    import cv2

    for _ in range(int(300 * (s / 2048) ** 2) + 20):
        cy = int(horizon + (s - horizon) * rng.random() ** 0.7)
        cx = int(rng.random() * s)
        radius = max(1, int((0.001 + 0.006 * (cy - horizon) / (s - horizon)) * s))
        colour = [(250, 220, 40), (250, 250, 245), (160, 90, 200)][rng.integers(0, 3)]
        cv2.circle(image, (cx, cy), radius, colour, -1, cv2.LINE_AA)
        cv2.circle(image, (cx, cy), max(1, radius // 3), (200, 140, 20), -1, cv2.LINE_AA)
    return add_grain(image, rng, 3.0)


def fur(rng, s: int) -> np.ndarray:
    yy, xx = unit_coordinates(s)
    low = fractal_noise(rng, s, s, base_cells=3, persistence=0.5, finest=8)
    stripes = 0.5 + 0.5 * np.sin((xx * 0.8 + yy * 0.25) * 2 * np.pi * 5 + 6 * low)
    base = lerp((95, 50, 20), (225, 140, 60), stripes)
    white = np.clip((fractal_noise(rng, s, s, base_cells=2, persistence=0.4, finest=16) - 0.62) * 6, 0, 1)
    base = lerp(base, (245, 235, 220), white)
    image = np.ascontiguousarray(base * (0.75 + 0.5 * fractal_noise(rng, s, s, 16, 0.7))[..., None])
    flow = (np.pi / 2 + 1.2 * (low - 0.5)).astype(np.float32)

    count = int(0.03 * s * s)
    for coat, (brightness, scale) in enumerate([(0.75, 1.0), (1.12, 0.8)]):
        px = rng.random(count) * s
        py = rng.random(count) * s
        ix, iy = px.astype(int), py.astype(int)
        theta = flow[iy, ix] + rng.normal(0, 0.12, count)
        length = s / 70 * scale * rng.uniform(0.6, 1.4, count)
        starts = np.stack([px, py], 1)
        ends = starts + np.stack([np.cos(theta), np.sin(theta)], 1) * length[:, None]
        colors = base[iy, ix] * brightness * rng.uniform(0.8, 1.2, (count, 1))
        draw_strokes(image, starts, ends, np.clip(colors, 0, 255), levels=8)
    import cv2

    for _ in range(6):  # long whiskers
        points = [(rng.random() * s, rng.random() * s)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(40):
            heading += rng.normal(0, 0.03)
            x, y = points[-1]
            points.append((x + np.cos(heading) * s / 60, y + np.sin(heading) * s / 60))
        curve = np.round(np.array(points)).astype(np.int32)[None]
        cv2.polylines(image, curve, False, (250, 248, 240), max(1, s // 700), cv2.LINE_AA)
    return add_grain(image, rng, 2.5)


def newspaper(rng, s: int) -> np.ndarray:
    import cv2

    yy, xx = unit_coordinates(s)
    streaks = cv2.resize(rng.standard_normal((max(8, s // 4), max(8, s // 64))).astype(np.float32), (s, s),
                         interpolation=cv2.INTER_LINEAR)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * 30 * (xx + 0.03 * fractal_noise(rng, s, s, 3, 0.5, 4)) + streaks)
    image = lerp((95, 55, 30), (160, 105, 60), rings) * (0.9 + 0.1 * streaks[..., None].clip(-2, 2))
    left, top, right, bottom = int(0.08 * s), int(0.06 * s), int(0.93 * s), int(0.96 * s)
    paper = np.asarray((236, 230, 212), np.float32) * (0.93 + 0.1 * fractal_noise(rng, bottom - top, right - left, 12, 0.7))[..., None]
    image[top:bottom, left:right] = paper
    shadow = np.clip(1 - np.abs(xx - 0.5) * 0.3, 0.8, 1)
    image = image * shadow[..., None]
    picture = (left + int(0.03 * s), top + int(0.11 * s), left + int(0.25 * s), top + int(0.36 * s))
    hills = fractal_noise(rng, picture[3] - picture[1], picture[2] - picture[0], 4, 0.65)
    image[picture[1]:picture[3], picture[0]:picture[2]] = (40 + 170 * hills)[..., None]
    image = to_uint8(image)  # OpenCV draws text on 8-bit images only

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    scale = s / 2048
    margin = int(0.03 * s)
    cv2.putText(image, "THE DAILY CHRONICLE", (left + margin, top + int(0.07 * s)), cv2.FONT_HERSHEY_TRIPLEX,
                2.2 * scale, (20, 20, 20), max(1, int(3 * scale)), cv2.LINE_AA)
    cv2.line(image, (left + margin, top + int(0.09 * s)), (right - margin, top + int(0.09 * s)), (30, 30, 30),
             max(1, int(2 * scale)), cv2.LINE_AA)
    columns = 3
    column_width = (right - left - 2 * margin) / columns
    line_height = max(3, int(18 * scale))
    for column in range(columns):
        x0 = int(left + margin + column * column_width)
        y = top + int(0.12 * s) if column else picture[3] + line_height * 2
        while y < bottom - margin:
            words = [''.join(rng.choice(letters, rng.integers(2, 10))) for _ in range(12)]
            text = " ".join(words)
            (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
            while width > column_width - margin and len(text) > 4:
                text = text[: int(len(text) * (column_width - margin) / width) - 1]
                (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
            cv2.putText(image, text, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (35, 30, 30), 1, cv2.LINE_AA)
            y += line_height
    ring = np.abs(np.hypot(xx - 0.72, yy - 0.78) - 0.07)
    image = image.astype(np.float32) * (1 - 0.25 * np.exp(-(ring / 0.004) ** 2))[..., None]
    return add_grain(image, rng, 2.0)


def skyline(rng, s: int) -> np.ndarray:
    import cv2

    image = vertical_gradient(s, s, [(0.0, (20, 15, 60)), (0.45, (110, 60, 130)), (0.75, (250, 140, 80)),
                                     (1.0, (255, 190, 120))])
    stars = rng.random((s, s)) > 1 - 0.0008
    stars[int(0.35 * s):] = False
    image[stars] = 240
    texture = fractal_noise(rng, s, s, 24, 0.75)
    x = 0
    while x < s:
        width = int(rng.uniform(0.04, 0.11) * s)
        height = int(rng.uniform(0.25, 0.8) * s)
        x0, x1, y0 = x, min(s, x + width), s - height
        facade = np.asarray(rng.uniform(40, 90, 3), np.float32)
        block = facade * (0.5 + texture[y0:, x0:x1])[..., None]
        pitch_x = max(3, int(rng.uniform(0.006, 0.012) * s))
        pitch_y = max(3, int(rng.uniform(0.008, 0.014) * s))
        ly, lx = np.mgrid[0:s - y0, 0:x1 - x0]
        window = ((lx % pitch_x) < pitch_x * 0.6) & ((ly % pitch_y) < pitch_y * 0.55) & (ly > pitch_y)
        lit_grid = rng.random(((s - y0) // pitch_y + 1, (x1 - x0) // pitch_x + 1))
        lit = lit_grid[ly // pitch_y, lx // pitch_x]
        warm = np.stack([255 * (0.8 + 0.2 * lit), 200 * (0.7 + 0.3 * lit), 90 + 60 * lit], -1)
        block = np.where((window & (lit > 0.55))[..., None], warm, block)
        block = np.where((window & (lit <= 0.55))[..., None], block * 0.6 + 10, block)
        image[y0:, x0:x1] = block
        if rng.random() < 0.4:
            top = (x0 + (x1 - x0) // 2, y0)
            cv2.line(image, top, (top[0], int(y0 - 0.05 * s)), (40, 30, 40), max(1, s // 1000), cv2.LINE_AA)
        x = x1 + int(rng.uniform(0, 0.01) * s)
    return add_grain(np.ascontiguousarray(image), rng, 3.0)


def ocean(rng, s: int) -> np.ndarray:
    horizon = int(0.4 * s)
    image = vertical_gradient(s, s, [(0.0, (50, 110, 200)), (0.4, (200, 225, 245)), (0.401, (40, 95, 150)),
                                     (1.0, (10, 45, 90))])
    clouds = fractal_noise(rng, s, s, base_cells=3, persistence=0.62)
    cover = np.clip((clouds - 0.55) * 5, 0, 1)
    rows = np.arange(s)[:, None]
    sky = rows < horizon
    image = np.where(sky[..., None], lerp(image, (252, 252, 255), cover * (0.7 + 0.6 * (clouds - 0.5))), image)
    yy, xx = unit_coordinates(s)
    depth = np.clip((yy - 0.4) / 0.6, 0, 1) + 0.02
    waves = np.zeros((s, s), np.float32)
    for index in range(5):
        angle = rng.uniform(-0.5, 0.5)
        frequency = rng.uniform(8, 22) * (1 + index)
        waves += np.sin(2 * np.pi * frequency * (xx * np.sin(angle) + np.log(depth) * 0.05 * np.cos(angle)
                                                 + 0.02 * xx / depth) + rng.uniform(0, 2 * np.pi)) / (1 + index)
    detail = fractal_noise(rng, s, s, base_cells=16, persistence=0.7)
    waves = waves / 2.5 + 1.2 * (detail - 0.5)
    water = image * (0.8 + 0.35 * waves)[..., None]
    foam = np.clip((waves - 0.75) * 4, 0, 1) * (depth > 0.1)
    water = lerp(water, (235, 240, 245), foam)
    glint = (rng.random((s, s)) < 0.02 * np.exp(-((xx - 0.6) / 0.12) ** 2)) & (waves > 0.3)
    water[glint] = 255
    image = np.where(sky[..., None], image, water)
    return add_grain(image, rng, 2.5)


def autumn_leaves(rng, s: int) -> np.ndarray:
    import cv2

    soil = fractal_noise(rng, s, s, base_cells=10, persistence=0.7)
    image = np.ascontiguousarray(np.asarray((60, 40, 25), np.float32) * (0.5 + soil)[..., None])
    scale = s / 2048
    for _ in range(int(60 * scale ** 2) + 5):  # twigs
        x, y = rng.random(2) * s
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.05, 0.2) * s
        end = (int(x + np.cos(angle) * length), int(y + np.sin(angle) * length))
        cv2.line(image, (int(x), int(y)), end, (45, 30, 20), max(1, int(rng.uniform(2, 6) * scale)), cv2.LINE_AA)
    palette = np.array([(190, 40, 20), (230, 110, 20), (240, 190, 40), (140, 80, 30), (170, 60, 30)], np.float32)
    for _ in range(int(4500 * scale ** 2) + 40):
        cx, cy = int(rng.random() * s), int(rng.random() * s)
        major = max(2, int(rng.uniform(0.015, 0.035) * s))
        minor = max(1, int(major * rng.uniform(0.35, 0.55)))
        angle = rng.uniform(0, 180)
        colour = palette[rng.integers(0, len(palette))] * rng.uniform(0.7, 1.15)
        colour = tuple(float(c) for c in np.clip(colour, 0, 255))
        dark = tuple(c * 0.55 for c in colour)
        cv2.ellipse(image, (cx, cy), (major, minor), angle, 0, 360, colour, -1, cv2.LINE_AA)
        cv2.ellipse(image, (cx, cy), (major, minor), angle, 0, 360, dark, 1, cv2.LINE_AA)
        dx, dy = np.cos(np.radians(angle)) * major, np.sin(np.radians(angle)) * major
        cv2.line(image, (int(cx - dx), int(cy - dy)), (int(cx + dx * 1.2), int(cy + dy * 1.2)), dark, 1, cv2.LINE_AA)
    for _ in range(int(400 * scale ** 2) + 5):
        cx, cy = int(rng.random() * s), int(rng.random() * s)
        grey = float(rng.uniform(90, 170))
        cv2.circle(image, (cx, cy), max(1, int(rng.uniform(2, 7) * scale)), (grey, grey, grey * 0.95), -1,
                   cv2.LINE_AA)
    image *= (0.8 + 0.4 * fractal_noise(rng, s, s, base_cells=64, persistence=0.8))[..., None]
    return add_grain(image, rng, 3.0)


def dunes(rng, s: int) -> np.ndarray:
    import cv2

    horizon = 0.33
    image = vertical_gradient(s, s, [(0.0, (120, 170, 220)), (horizon, (235, 225, 210)), (horizon + 0.001, (210, 160, 100)),
                                     (1.0, (190, 130, 70))])
    yy, xx = unit_coordinates(s)
    height = fractal_noise(rng, s, s, base_cells=3, persistence=0.45, finest=16)
    gy, gx = np.gradient(cv2.GaussianBlur(height, (0, 0), max(1.0, s / 60)))
    light = np.clip(0.9 + (gx * 0.8 - gy * 0.6) * s * 0.2, 0.5, 1.2)  # slope term has std ~1
    period = max(4.0, s / 200)
    warp = fractal_noise(rng, s, s, base_cells=12, persistence=0.6, finest=4)
    ripples = np.sin(2 * np.pi * (xx * 0.8 + yy * 0.6) * s / period + 10 * warp)
    sand = image * (light * (1 + 0.08 * ripples))[..., None]
    sand = add_grain(sand, rng, 5.0)
    ground = (yy >= horizon)[..., None]
    image = np.where(ground, sand, image)
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
    rng = np.random.default_rng([seed, index, RENDERER_VERSION])
    image = SCENES[index].render(rng, size)
    assert image.shape == (size, size, 3), (SCENES[index].stem, image.shape)
    return to_uint8(image)
