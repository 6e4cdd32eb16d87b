"""Real photographs and digital art for the benchmarks: Debian's wallpaper packages, fetched at run time.

``plasma-workspace-wallpapers`` (KDE, mostly digital art up to 5120 x 2880) and
``mate-backgrounds`` (photographs and art) are downloaded with ``apt-get download`` and unpacked
with ``dpkg -x`` into ``bench-out/debs`` (git-ignored; done once). Each wallpaper counts once:
the largest file of each wallpaper folder (light and dark variants apart), and one file per
MATE picture whatever its sizes.

A test set of N images at S x S (:func:`square_set`) uses the pictures whose short side is at
least a given minimum, in a fixed pseudo-random order (so photographs and art are mixed); each
is resized so that its short side is S (OpenCV area interpolation when shrinking, bicubic when
enlarging), then an S x S crop is cut, from the centre first; when more images than pictures
are asked for, further crops of the same pictures are taken (at the start, the end, then the
quarter points of the long side). Each crop is saved as a Pillow JPEG at quality 95, as the
paper's generated images were. No picture in these packages has a short side of 4096: the
4096 sets are enlarged from pictures of 2000 to 3172 pixels.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds")
ROOT = Path(os.environ.get("A4K_BENCH_OUT", Path(__file__).resolve().parents[1] / "bench-out"))
CROP_POSITIONS = (0.5, 0.0, 1.0, 0.25, 0.75)  # along the long side, in this order


class Unavailable(Exception):
    """The packages could not be fetched (no apt-get, no network); the message says why."""


def unpacked() -> Path:
    """The folder the packages are unpacked into, fetching them on first use."""
    target = ROOT / "debs" / "root"
    if (ROOT / "debs" / ".done").exists():
        return target
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise Unavailable("apt-get/dpkg not found: the benchmark images come from Debian packages")
    folder = ROOT / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not list(folder.glob(f"{package}_*.deb")):
            done = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
            if done.returncode != 0:
                raise Unavailable(f"apt-get download {package} failed: {done.stderr.strip()[-300:]}")
    for deb in folder.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    (folder / ".done").touch()
    return target


def sources() -> list[tuple[int, Path]]:
    """(short side, file) of each distinct picture, in a fixed pseudo-random order."""
    from PIL import Image

    groups: dict[str, tuple[int, str, Path]] = {}
    for path in sorted(unpacked().rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or not path.is_file():
            continue
        text = str(path)
        if "/contents/" in text:  # a KDE wallpaper: one picture per folder and variant
            key = text.split("/contents/")[0] + ("-dark" if "/images_dark/" in text else "")
        else:  # a MATE picture, e.g. Elephants.jpg and Elephants_3840x2160.jpg are one
            key = re.sub(r"_\d+x\d+$", "", path.stem)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except OSError:
            continue
        candidate = (width * height, min(width, height), text, path)
        if key not in groups or candidate[:3] > groups[key][:3]:
            groups[key] = candidate
    order = sorted(groups.items(), key=lambda item: hashlib.sha256(item[0].encode()).hexdigest())
    return [(short, path) for _, (_, short, _, path) in order]


def _short_side_to(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    return cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def square_set(size: int, count: int, min_short_side: int) -> Path:
    """A folder of ``count`` size x size JPEG q95 crops of real pictures (built once, then reused)."""
    import cv2
    from PIL import Image
    folder = ROOT / "sets" / f"{size}x{count}-from{min_short_side}"
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    usable = [path for short, path in sources() if short >= min_short_side]
    if not usable:
        raise Unavailable(f"no source picture is large enough for {size} x {size}")
    folder.mkdir(parents=True, exist_ok=True)
    made = 0
    for position in CROP_POSITIONS:
        for path in usable:
            if made == count:
                return folder
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            resized = _short_side_to(bgr[:, :, ::-1], size)
            height, width = resized.shape[:2]
            if position != 0.5 and max(height, width) - size < size // 4:
                continue  # too little room for a crop that differs from the centre one
            top = round((height - size) * position) if height > width else (height - size) // 2
            left = round((width - size) * position) if width >= height else (width - size) // 2
            crop = np.ascontiguousarray(resized[top:top + size, left:left + size])
            Image.fromarray(crop).save(folder / f"{made:03d}.jpg", quality=95)
            made += 1
    if made < count:
        raise Unavailable(f"only {made} crops of {size} x {size} could be made")
    return folder


def reference_set(size: int, count: int) -> Path:
    """``count`` non-square references of ``round(1.2 size) x round(1.57 size)`` (Aesthetic-4K's median
    shape), made from the size x size set with a bicubic resize; JPEG q95, built once."""
    import cv2
    from PIL import Image

    folder = ROOT / "sets" / f"reference-{size}x{count}"
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shape = (round(size * 1.57), round(size * 1.2))     # cv2: (width, height)
    for index, path in enumerate(sorted(square_set(size, count, 1600 if size <= 2048 else 2000).glob("*.jpg"))):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(cv2.resize(rgb, shape, interpolation=cv2.INTER_CUBIC)).save(folder / f"{index:03d}.jpg",
                                                                                    quality=95)
    return folder
