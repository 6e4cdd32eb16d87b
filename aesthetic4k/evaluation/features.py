"""Feature caches of a run: what makes re-runs and resumed runs give the same bits as fresh ones.

The network-based metrics turn each image into features (metrics' ``prepare``/``embed``); a
run keeps them on disk, keyed by the metric's ``feature_recipe`` and the image:

- ``GeneratedFeatures``: features of a generated image's IN-MEMORY pixels (the paper protocol),
  next to its saved JPEG (``<images>/.a4k-features/<recipe>/<stem>.npz``) together with the
  JPEG's sha256. A re-run that finds the JPEG also finds these features, so FID, KID, CLIPScore
  and Aesthetics do not move; they are written before the JPEG, so an interrupted run never has
  a JPEG without them.
- ``FileFeatures``: features of image files (references, folder images) in the user cache
  (``$A4K_CACHE/features``), keyed by path, size and modification time, so a re-run does not
  decode 4K files again.

A damaged or unwritable cache only costs time: entries that cannot be read are recomputed, and
``FileFeatures`` that cannot be written are not kept. Features of a generated image that cannot
be written stop the run (one line naming the file), before its JPEG is saved.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import UserError

GENERATED_FOLDER = ".a4k-features"


def recipe_digest(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _load(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None


class GeneratedFeatures:
    """Features of generated images' in-memory pixels, beside the images."""

    def __init__(self, image_dir: Path):
        self.root = Path(image_dir) / GENERATED_FOLDER

    def _path(self, digest: str, stem: str) -> Path:
        return self.root / digest / f"{stem}.npz"

    def load(self, digest: str, stem: str, jpeg_sha: str) -> Optional[np.ndarray]:
        data = _load(self._path(digest, stem))
        if data is None or str(data.get("jpeg_sha256")) != jpeg_sha:
            return None
        return data["features"]

    def save(self, digest: str, stem: str, jpeg_sha: str, features: np.ndarray) -> None:
        """Keep the features before the JPEG is saved; failing to is fatal (a full disk, a read-only folder):
        a JPEG without them would be scored from its file on the next run, with other numbers."""
        path = self._path(digest, stem)
        try:
            _save(path, features=np.asarray(features, np.float32), jpeg_sha256=np.array(jpeg_sha))
        except OSError as exc:
            raise UserError(f"{path}: cannot write ({exc.strerror or exc}); images and features finished "
                            "so far are kept, run the same command again to resume") from None


class FileFeatures:
    """Features of image files in the user cache, keyed by (path, size, mtime, stem, recipe)."""

    def __init__(self, root: Optional[Path]):
        self.root = root        # None: disabled

    def _path(self, digest: str, path: Path, stem: str) -> Optional[Path]:
        if self.root is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        key = json.dumps([os.fsencode(os.path.abspath(path)).hex(), stat.st_size, stat.st_mtime_ns, stem])
        return self.root / digest / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.npy"

    def load(self, digest: str, path: Path, stem: str) -> Optional[np.ndarray]:
        file = self._path(digest, path, stem)
        if file is None or not file.is_file():
            return None
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def save(self, digest: str, path: Path, stem: str, features: np.ndarray) -> None:
        file = self._path(digest, path, stem)
        if file is None:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp, open(tmp, "wb") as handle:
                np.save(handle, np.asarray(features, np.float32), allow_pickle=False)
        except OSError:
            pass
