"""The per-image work of `a4k-data build`, in functions that run anywhere: in the build's own
process, in a local worker process, or as a Ray task on another machine.

Each ``*_batch`` function takes plain data (strings, numbers, dicts), does its images one by
one, records what it finished as one shard of the stage's store (see
:mod:`aesthetic4k.data.build_state`) and returns the same records to the driver. A batch cut
short (an error, Ctrl-C in the build's own process) still records the images it finished.
Nothing here decides anything that depends on other images: that is the driver's job, so the
result cannot depend on how the work was spread.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from aesthetic4k.atomic import atomic_path
from aesthetic4k.data.build_state import write_shard
from aesthetic4k.errors import ImageError, UserError
from aesthetic4k_metrics.files import sha256_file

SCAN_VERSION = 2
HASH_DRAFT = 256     # JPEGs are decoded at >= 256 px for the decode check and the hash: 8-64x faster
QUALITY_SIZE = 2048  # quality metrics see the image as Eval@2048 would (capped at its own short side)
STAGES = {"scan": ("rel",), "quality": ("sha256", "metric"), "outputs": ("output",)}  # store keys


def worker_setup() -> None:
    """One core per worker: the libraries' own thread pools would only compete with the other workers."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass


def _commit(state: str, stage: str, records: list) -> None:
    write_shard(Path(state) / stage, records)


# ---------------------------------------------------------------- scan

def scan_file(path: Path, max_pixels: int) -> dict:
    """Hash, header and decode check of one file; ``error`` set instead when it cannot be used."""
    import numpy as np

    from aesthetic4k.data.images import open_rgb, read_header
    from aesthetic4k.data.phash import phash

    result: dict = {"scan_version": SCAN_VERSION}
    try:
        stat = path.stat()
        result.update(bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
        header = read_header(path, max_pixels)  # zero-byte, non-image and bomb checks first
        result["sha256"] = sha256_file(path)
        image = open_rgb(path, max_pixels, draft_size=HASH_DRAFT)
        result.update(width=header.width, height=header.height, format=header.format, mode=header.mode,
                      orientation=header.orientation, icc=header.icc,
                      phash=format(phash(np.asarray(image)), "016x"))
    except ImageError as exc:
        result["error"] = exc.reason
    except PermissionError:
        result["error"] = "permission denied"
    except OSError as exc:
        result["error"] = f"cannot read ({exc.strerror or exc})"
    return result


def scan_batch(state: str, files: list, max_pixels: int) -> list[dict]:
    """Scan ``[(rel, path), ...]``; files that could not even be read are returned but not recorded."""
    results = []
    try:
        for rel, path in files:
            results.append({"rel": rel, **scan_file(Path(path), max_pixels)})
    finally:
        _commit(state, "scan", [r for r in results if "sha256" in r or "bytes" in r])
    return results


# ---------------------------------------------------------------- quality (GLCM Score)

def glcm_function():
    try:
        from aesthetic4k_metrics import glcm_score
    except ImportError as exc:
        raise UserError(f"--min-glcm needs aesthetic4k_metrics.glcm_score, which this installation lacks ({exc})") from None
    return glcm_score


def quality_image(path: Path, width: int, height: int, max_pixels: int):
    """The image as the quality metrics see it: shorter side to 2048 (or its own), center crop."""
    import numpy as np

    from aesthetic4k.data.images import open_rgb, resize_center_crop

    side = min(QUALITY_SIZE, width, height)
    image = open_rgb(path, max_pixels, draft_size=side)
    return np.asarray(resize_center_crop(image, side))


def glcm_batch(state: str, images: list, max_pixels: int) -> list[dict]:
    """GLCM Score of ``[(sha256, path, width, height), ...]``; an unreadable image gives ``error``."""
    score = glcm_function()
    results, done = [], []
    try:
        for sha, path, width, height in images:
            try:
                value = float(score(quality_image(Path(path), width, height, max_pixels)))
            except ImageError as exc:
                results.append({"sha256": sha, "metric": "glcm_score", "error": exc.reason})
                continue
            record = {"sha256": sha, "metric": "glcm_score", "value": value}
            results.append(record)
            done.append(record)
    finally:
        _commit(state, "quality", done)
    return results


def warm_up_glcm() -> None:
    """Compile the GLCM kernel once in the driver, before worker processes are forked from it.

    numba's OpenMP layer cannot survive a fork, so the fork-safe workqueue layer is chosen
    first when nothing has started one yet; see :mod:`aesthetic4k.data.distribute`.
    """
    import numpy as np

    glcm_function()(np.zeros((64, 64, 3), np.uint8))


# ---------------------------------------------------------------- write

def _copy(source: Path, target: Path, link: bool) -> None:
    with atomic_path(target) as tmp:
        if link:
            try:
                os.link(source, tmp)
                return
            except OSError:
                pass
        shutil.copyfile(source, tmp)


def write_job(out: Path, job: dict, max_pixels: int) -> None:
    """Produce every planned output of one image, decoding the source at most once."""
    from aesthetic4k.data.images import open_rgb, resize_center_crop, save_atomic

    source = Path(job["source"])
    if not source.is_file():
        raise ImageError(source, "the source file is gone (it was there when the build scanned it)")
    decoded = []

    def image():
        if not decoded:
            decoded.append(open_rgb(source, max_pixels))
        return decoded[0]

    for action in job["actions"]:
        target = out / action["output"]
        target.parent.mkdir(parents=True, exist_ok=True)
        kind = action["do"]
        if kind in ("copy", "link"):
            _copy(source, target, kind == "link")
        elif kind == "encode":
            save_atomic(image(), target)
        elif kind == "crop":
            save_atomic(resize_center_crop(image(), action["size"]), target)
        elif kind == "keep":
            save_atomic(image(), target)
        else:
            raise ValueError(f"unknown output action {kind!r}")


def write_batch(state: str, out: str, jobs: list, max_pixels: int) -> list[dict]:
    """Write the outputs of ``jobs``; per job ``{"rel", "error"?}``. A source that can no longer be
    decoded is an ``error`` for that image; a failure to write is ``write_error`` (the build stops)."""
    results, done = [], []
    try:
        for job in jobs:
            try:
                write_job(Path(out), job, max_pixels)
            except ImageError as exc:
                results.append({"rel": job["rel"], "error": exc.reason})
                continue
            except OSError as exc:
                where = exc.filename or job["rel"]
                results.append({"rel": job["rel"], "write_error": f"{where}: {exc.strerror or exc}"})
                continue
            written = [{"output": a["output"], "key": a["key"]} for a in job["actions"]]
            results.append({"rel": job["rel"], "written": written})
            done += written
    finally:
        _commit(state, "outputs", done)
    return results
