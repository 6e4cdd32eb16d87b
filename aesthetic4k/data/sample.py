"""The built-in offline sample set: 8 rendered scenes with captions, a smoke test and not a benchmark.

On first use at a given size the scenes are rendered (:mod:`aesthetic4k.data.scenes`) into a
temporary folder beside the final one and renamed into place, so an interrupted first use never
leaves a half-written set; later uses only read. Location:
``$A4K_CACHE/sample-v<renderer version>/size_<size>/`` (default cache ``~/.cache/aesthetic4k``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from aesthetic4k.data.metadata import METADATA_NAME, write_metadata
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.cache import cache_root

MIN_SIZE = 256
SAMPLE_NOTE = ("aesthetic4k built-in sample: 8 procedurally rendered scenes for smoke tests. "
               "It is NOT the Aesthetic-4K benchmark; numbers measured on it are not comparable to published ones.")
INFO_NAME = "sample.json"
# lossless: the files decode to exactly the rendered pixels, whatever Pillow's or OpenCV's codec release
IMAGE_SUFFIX = ".png"


def sample_folder(size: int) -> Path:
    from aesthetic4k.data.scenes import RENDERER_VERSION

    return cache_root() / f"sample-v{RENDERER_VERSION}" / f"size_{int(size)}"


def _complete(folder: Path) -> bool:
    from aesthetic4k.data.scenes import SCENES

    if not (folder / INFO_NAME).is_file() or not (folder / METADATA_NAME).is_file():
        return False
    return all((folder / "images" / f"{scene.stem}{IMAGE_SUFFIX}").is_file() for scene in SCENES)


def _render_into(folder: Path, size: int, progress: bool) -> None:
    from PIL import Image

    from aesthetic4k.data.images import save_atomic
    from aesthetic4k.data.scenes import RENDERER_VERSION, SCENES, render_scene

    (folder / "images").mkdir(parents=True)
    scenes = list(enumerate(SCENES))
    if progress:
        from tqdm import tqdm

        scenes = tqdm(scenes, desc=f"rendering sample set at {size}px", unit="image", leave=False)
    for index, scene in scenes:
        save_atomic(Image.fromarray(render_scene(index, size)), folder / "images" / f"{scene.stem}{IMAGE_SUFFIX}")
    write_metadata(folder / METADATA_NAME, [(f"images/{scene.stem}{IMAGE_SUFFIX}", scene.caption) for scene in SCENES])
    info = {"name": "sample", "smoke_test": True, "note": SAMPLE_NOTE, "size": size, "images": len(SCENES),
            "renderer_version": RENDERER_VERSION, "seed": 0, "format": "PNG (lossless)"}
    (folder / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (folder / "README.txt").write_text(SAMPLE_NOTE + "\n", encoding="utf-8")


def materialise_sample(size: int = 2048, progress: bool = True) -> Path:
    """Render the sample set at ``size`` into the cache unless it is there already; return its folder."""
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UserError(f"sample set: size must be a whole number, got {size!r}") from None
    if size < MIN_SIZE:
        raise UserError(f"sample set: size must be at least {MIN_SIZE} px, got {size}")
    folder = sample_folder(size)
    if _complete(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError as exc:
        raise UserError(f"sample set: cannot write the cache folder {folder.parent} ({exc.strerror or exc}); "
                        "set A4K_CACHE to a writable folder") from None
    try:
        _render_into(staging, size, progress)
        if folder.exists():  # an incomplete leftover (e.g. files deleted by hand): replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:
            if not _complete(folder):  # not another process finishing first: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
