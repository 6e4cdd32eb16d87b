"""One image of a report (or one stem of a comparison) turned into the small files the page shows.

An image is decoded, its patch grid taken from the run (or computed), the places to look at are
chosen, and then only encoded files are kept: a thumbnail, a heat map, and the 256 x 256 crops of
the generated image(s) and of the reference at the same coordinates. Images are handled one at a
time, so memory stays flat whatever the number or the size of the images.

All image files of a report share a byte budget: a run of N images gets
``min(ceiling, max(floor, budget / N))`` bytes per image, scaled by the number of runs shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aesthetic4k.errors import UserError
from aesthetic4k.report.crops import (CROP, FramedReference, Spot, encode_within, padded_sides, patch_extremes,
                                      random_patch, spots_for, window)
from aesthetic4k.report.folder import safe_name
from aesthetic4k.report.glcm_scale import heat_map_png

IMAGE_BYTES_BUDGET = 64_000_000
PER_IMAGE_CEILING = 700_000
PER_IMAGE_FLOOR = 80_000


def per_image_budget(n_images: int, runs: int = 1) -> int:
    share = IMAGE_BYTES_BUDGET / max(n_images, 1)
    return int(runs * min(PER_IMAGE_CEILING, max(PER_IMAGE_FLOOR, share)))


@dataclass
class Picture:
    src: str                        # path relative to the page
    width: int
    height: int


@dataclass
class RunImage:
    """One run's image of a stem."""

    entry: dict
    width: int = 0
    height: int = 0
    grid: np.ndarray | None = None
    thumb: Picture | None = None
    heat: Picture | None = None
    error: str = ""


@dataclass
class ImageView:
    stem: str
    prompt: str | None
    runs: list                                      # RunImage per run shown (one, or two when comparing)
    spots: list = field(default_factory=list)       # Spot
    crops: dict = field(default_factory=dict)       # (spot kind, run index or "reference") -> Picture
    padded: dict = field(default_factory=dict)      # spot kind -> True when the window passes an edge
    reference_note: str = ""                        # why there is no reference crop, or how it was framed

    @property
    def frame(self) -> tuple[int, int]:
        good = [r for r in self.runs if not r.error]
        return (good[0].width, good[0].height) if good else (0, 0)


def entry_stem(entry: dict) -> str:
    return str(entry.get("stem") or Path(str(entry.get("file") or "?")).stem)


def _decode(entry: dict, image: RunImage):
    """The image's pixels, with ``image`` filled in (size, grid) or its error set; None on error."""
    from aesthetic4k_metrics.glcm import glcm_patch_scores
    from aesthetic4k_metrics.image_input import read_image, to_gray

    path = entry.get("file")
    if not path:
        image.error = "no image file recorded for this entry"
        return None
    try:
        decoded = read_image(path)
        grid = entry.get("glcm_patches")
        grid = np.asarray(grid, dtype=np.float64) if grid is not None else \
            np.asarray(glcm_patch_scores(to_gray(decoded.bgr)), dtype=np.float64)
    except UserError as exc:
        image.error = str(exc)
        return None
    if grid.ndim != 2 or grid.size == 0:
        image.error = f"{path}: no patch grid (smaller than one 64 x 64 patch?)"
        return None
    image.height, image.width = decoded.rgb.shape[:2]
    image.grid = grid
    return decoded.rgb


def _reference(entry_list, width: int, height: int):
    """(the reference framed like the generated image, or None; note) for the first entry naming one."""
    from aesthetic4k_metrics.image_input import read_rgb

    path = next((e.get("reference") for e in entry_list if e.get("reference")), None)
    if not path:
        return None, "no reference image for this entry"
    try:
        pixels = read_rgb(path)
    except UserError as exc:
        return None, f"reference unreadable: {exc}"
    framed = FramedReference(pixels, width, height)
    if framed.resized:
        return framed, (f"reference {pixels.shape[1]} x {pixels.shape[0]} brought to the {width} x {height} "
                        "frame (shorter side, Lanczos, centre crop)")
    return framed, ""


def comparison_spots(grids: list, stem: str) -> list[Spot]:
    """Most detailed in A, most detailed in B, largest patch-score difference, random; each place once."""
    spots = []
    (a_best, _), (b_best, _) = patch_extremes(grids[0]), patch_extremes(grids[1])
    candidates = [("most-a", "most detailed in A", a_best), ("most-b", "most detailed in B", b_best)]
    if grids[0].shape == grids[1].shape:
        difference = np.abs(grids[0] - grids[1])
        place = np.unravel_index(int(np.argmax(difference)), difference.shape)
        candidates.append(("difference", "largest difference", (int(place[0]), int(place[1]))))
    taken = [where for _, _, where in candidates]
    candidates.append(("random", "random patch", random_patch(grids[0].shape, stem, avoid=taken)))
    seen = {}
    for kind, label, (row, col) in candidates:
        if (row, col) in seen:
            first = seen[(row, col)]
            spots[first] = Spot(spots[first].kind, f"{spots[first].label}, {label}", row, col)
            continue
        seen[(row, col)] = len(spots)
        spots.append(Spot(kind, label, row, col))
    return spots


def build_view(index: int, entries: list, folder, budget: int) -> ImageView:
    """Decode one stem's image(s) and its reference, write the report's files for it, keep only their names."""
    stem = entry_stem(entries[0])
    prompt = next((e.get("prompt") for e in entries if e.get("prompt")), None)
    view = ImageView(stem=stem, prompt=prompt, runs=[RunImage(entry=e) for e in entries])
    pixels = [_decode(e, image) for e, image in zip(entries, view.runs)]
    good = [i for i, p in enumerate(pixels) if p is not None]
    if not good:
        return view
    width, height = view.frame
    for i in good:                           # crops at the same coordinates need the same frame
        if (view.runs[i].width, view.runs[i].height) != (width, height):
            view.runs[i].error = (f"{view.runs[i].width} x {view.runs[i].height}, not the {width} x {height} "
                                  "of the first run: no crops at the same coordinates")
            pixels[i] = None
    good = [i for i, p in enumerate(pixels) if p is not None]
    if len(entries) == 2 and len(good) == 2:
        view.spots = comparison_spots([view.runs[0].grid, view.runs[1].grid], stem)
    else:
        view.spots = spots_for(view.runs[good[0]].grid, stem)
    reference, view.reference_note = _reference(entries, width, height)

    keys, crops = [], []
    for spot in view.spots:
        left, top = spot.origin
        view.padded[spot.kind] = padded_sides(left, top, width, height)
        for i in good:
            keys.append((spot.kind, i))
            crops.append(window(pixels[i], left, top))
        if reference is not None:
            keys.append((spot.kind, "reference"))
            crops.append(reference.window(left, top))
    del reference
    thumbs, sizes, encoded = encode_within([pixels[i] for i in good], crops, budget)
    del pixels, crops
    base = f"{index:04d}-{safe_name(stem)}"
    run_names = ["a", "b"] if len(entries) == 2 else ["generated"]
    for i, thumb, (w, h) in zip(good, thumbs, sizes):
        view.runs[i].thumb = Picture(folder.add_image(f"{base}-{run_names[i]}-thumb.jpg", thumb), w, h)
        view.runs[i].heat = Picture(folder.add_image(f"{base}-{run_names[i]}-heat.png",
                                                     heat_map_png(view.runs[i].grid)), *view.runs[i].grid.shape[::-1])
    for (kind, column), payload in zip(keys, encoded):
        name = run_names[column] if isinstance(column, int) else column
        view.crops[(kind, column)] = Picture(folder.add_image(f"{base}-{kind}-{name}.jpg", payload), CROP, CROP)
    return view
