"""Decoding images the way the Aesthetic-4K scripts do: OpenCV, EXIF orientation applied.

Every metric takes a path or an H x W x 3 uint8 RGB array. Paths are read once as bytes (the
byte count is the on-disk size used by the Compression Ratio ``file`` mode) and decoded with
``cv2.imdecode``, which is what ``cv2.imread`` in the authors' scripts does: EXIF orientation
applied, grey/palette images expanded to 3 channels, alpha dropped, 16-bit samples scaled to
8 bits (value >> 8), CMYK JPEGs converted by libjpeg.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrics.errors import ImageError

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # keep libpng/libjpeg warnings off the terminal

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class DecodedImage:
    bgr: np.ndarray        # H x W x 3 uint8, OpenCV channel order
    file_bytes: int        # size of the encoded file (0 for arrays)

    @property
    def rgb(self) -> np.ndarray:
        return self.bgr[:, :, ::-1]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _truncated_jpeg(data: bytes) -> bool:
    # A complete JPEG has an end-of-image marker after its last start-of-scan marker
    # (0xFF is byte-stuffed inside entropy-coded data, so neither marker appears there).
    if not data.startswith(b"\xff\xd8"):
        return False
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def decode_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an H x W x 3 uint8 BGR array, or raise ImageError."""
    import cv2

    if not data:
        raise ImageError(name, "empty file")
    if _truncated_jpeg(data):
        raise ImageError(name, "truncated JPEG (no end-of-image marker)")
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(name, f"cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    if bgr is None:
        raise ImageError(name, "not a readable image (corrupt, truncated or unsupported format)")
    return bgr


def read_image(image) -> DecodedImage:
    """Decode a path (str/Path) or accept an H x W x 3 uint8 RGB array (or H x W grey)."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ImageError(path, "is a folder, not an image") from None
        except OSError as exc:
            raise ImageError(path, f"cannot read ({exc.strerror or exc})") from None
        return DecodedImage(decode_bytes(data, str(path)), len(data))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ImageError("<array>", f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError("<array>", f"expected an H x W x 3 RGB array, got shape {array.shape}")
    return DecodedImage(np.ascontiguousarray(array[:, :, ::-1]), 0)


def read_rgb(image) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of a path or array."""
    return np.ascontiguousarray(read_image(image).rgb)


def to_gray(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR->grey conversion (fixed-point rounding differs from Pillow's convert('L'))."""
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
