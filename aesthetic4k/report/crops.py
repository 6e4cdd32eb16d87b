"""Where a report looks closely, and the pixels it shows there.

For each image the report picks a few 64 x 64 patches of the metric's grid (the most and the
least detailed, one chosen at random with a seed derived from the image's stem, so every run of
the same dataset looks at the same random place) and shows a 256 x 256 window centred on each,
pixel for pixel, from the generated image and from the reference image at the same coordinates.
Windows that reach past an image edge are padded with a grey checkerboard, never narrowed, so
crops from two images always line up.

A reference whose size differs from the generated image is first brought into the generated
image's frame the way the reference baseline and FID see it: scaled so its shorter side covers
the frame (Lanczos), then centre-cropped.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

PATCH = 64
CROP = 256                      # side of every crop window, shown at 1:1
CHECKER = 8                     # square size of the padding pattern
CHECKER_GREYS = (92, 124)
RANDOM_SEED = 0                 # part of every random patch's seed: same stem -> same patch
THUMB_LONG_SIDE = 360
# (thumbnail quality, crop quality, crops in full colour 4:4:4) tried in order until an image's files
# fit its byte share; only noise-like images reach the last steps.
QUALITY_STEPS = ((85, 92, True), (80, 88, True), (72, 84, True), (65, 80, True), (55, 74, True), (45, 66, True),
                 (40, 55, False), (35, 45, False), (30, 35, False), (25, 25, False))


@dataclass(frozen=True)
class Spot:
    """A patch of the grid the report crops around, and why it was chosen."""

    kind: str                   # "most", "least", "random", ... (data-spot in the page)
    label: str                  # what the page says, e.g. "most detailed"
    row: int
    col: int

    @property
    def origin(self) -> tuple[int, int]:
        """(left, top) of the crop window in image pixels; may be negative near the edges."""
        half = (CROP - PATCH) // 2
        return self.col * PATCH - half, self.row * PATCH - half

    @property
    def patch_xy(self) -> tuple[int, int]:
        return self.col * PATCH, self.row * PATCH


def patch_extremes(grid: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """(row, col) of the most and of the least detailed patch; ties go to the first in reading order."""
    grid = np.asarray(grid, dtype=np.float64)
    best = np.unravel_index(int(np.argmax(grid)), grid.shape)
    worst = np.unravel_index(int(np.argmin(grid)), grid.shape)
    return (int(best[0]), int(best[1])), (int(worst[0]), int(worst[1]))


def random_patch(shape: tuple[int, int], stem: str, avoid=(), seed: int = RANDOM_SEED) -> tuple[int, int]:
    """A patch drawn uniformly with a generator seeded by sha256(seed/stem), skipping ``avoid`` when it can.

    Depends only on the stem and the grid shape, so two runs of one dataset get the same patch.
    """
    rows, cols = shape
    digest = hashlib.sha256(f"{seed}/{stem}".encode("utf-8")).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))
    avoid = {r * cols + c for r, c in avoid}
    choices = [i for i in range(rows * cols) if i not in avoid] or list(range(rows * cols))
    index = choices[int(rng.integers(len(choices)))]
    return index // cols, index % cols


def spots_for(grid: np.ndarray, stem: str) -> list[Spot]:
    """The three places a run report looks at: most detailed, least detailed, random."""
    (best_r, best_c), (worst_r, worst_c) = patch_extremes(grid)
    rand_r, rand_c = random_patch(np.shape(grid), stem, avoid=[(best_r, best_c), (worst_r, worst_c)])
    return [Spot("most", "most detailed", best_r, best_c), Spot("least", "least detailed", worst_r, worst_c),
            Spot("random", "random patch", rand_r, rand_c)]


def checkerboard(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // CHECKER + xx // CHECKER) % 2).astype(bool)
    tile = np.where(light, CHECKER_GREYS[1], CHECKER_GREYS[0]).astype(np.uint8)
    return np.repeat(tile[:, :, None], 3, axis=2)


def window(rgb: np.ndarray, left: int, top: int, size: int = CROP) -> np.ndarray:
    """The size x size window at (left, top), outside-image pixels replaced by the checkerboard."""
    height, width = rgb.shape[:2]
    out = checkerboard(size, size)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + size), min(height, top + size)
    if x1 > x0 and y1 > y0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = rgb[y0:y1, x0:x1]
    return out


def padded_sides(left: int, top: int, width: int, height: int, size: int = CROP) -> bool:
    return left < 0 or top < 0 or left + size > width or top + size > height


class FramedReference:
    """The reference as seen in the generated image's width x height frame, one window at a time.

    The frame is the reference scaled so its shorter side covers it (Lanczos), then centre-cropped.
    Windows are resampled straight from the reference (Pillow's ``box``), so a 4096 frame is never
    built; they match a full resize-and-crop to within one grey level.
    """

    def __init__(self, reference: np.ndarray, width: int, height: int):
        from PIL import Image

        self.pixels = reference
        self.width, self.height = width, height
        ref_h, ref_w = reference.shape[:2]
        self.resized = (ref_w, ref_h) != (width, height)
        scale = max(width / ref_w, height / ref_h)
        new_w, new_h = max(width, round(ref_w * scale)), max(height, round(ref_h * scale))
        self.offset = ((new_w - width) // 2, (new_h - height) // 2)
        self.step = (ref_w / new_w, ref_h / new_h)
        self.image = Image.fromarray(reference) if self.resized else None

    def window(self, left: int, top: int, size: int = CROP) -> np.ndarray:
        if not self.resized:
            return window(self.pixels, left, top, size)
        from PIL import Image

        out = checkerboard(size, size)
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(self.width, left + size), min(self.height, top + size)
        if x1 > x0 and y1 > y0:
            (dx, dy), (sx, sy) = self.offset, self.step
            box = ((x0 + dx) * sx, (y0 + dy) * sy, (x1 + dx) * sx, (y1 + dy) * sy)
            part = self.image.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box)
            out[y0 - top:y1 - top, x0 - left:x1 - left] = np.asarray(part)
        return out


def thumbnail(rgb: np.ndarray, long_side: int = THUMB_LONG_SIDE) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def jpeg(rgb: np.ndarray, quality: int, full_colour: bool) -> bytes:
    """Pillow JPEG; crops keep full colour resolution (4:4:4), thumbnails use 4:2:0.

    No ``optimize``: Pillow then sizes its output buffer by the pixel count, which a detailed
    4:4:4 crop at high quality can exceed ("broken data stream").
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality,
                                                    subsampling=0 if full_colour else 2)
    return buffer.getvalue()


def encode_within(images: list[np.ndarray], crops: list[np.ndarray], budget: int,
                  long_side: int = THUMB_LONG_SIDE):
    """Thumbnails of ``images`` and the ``crops`` as JPEG, quality lowered (then thumbnail size) to fit ``budget``.

    Returns (thumbnail bytes, thumbnail sizes (w, h), crop bytes). Best effort: six 256 x 256 crops
    of pure noise need about 150 kB even at the lowest step; photographs need far less.
    """
    while True:
        smalls = [thumbnail(image, long_side) for image in images]
        for thumb_quality, crop_quality, full_colour in QUALITY_STEPS:
            thumbs = [jpeg(small, thumb_quality, full_colour=False) for small in smalls]
            encoded = [jpeg(crop, crop_quality, full_colour) for crop in crops]
            total = sum(map(len, thumbs)) + sum(map(len, encoded))
            if total <= budget:
                break
        if total <= budget or long_side <= 120:
            return thumbs, [(s.shape[1], s.shape[0]) for s in smalls], encoded
        long_side = int(long_side * 0.75)
