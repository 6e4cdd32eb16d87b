"""Compression Ratio (Aesthetic-4K, docs/protocol.md section 4): raw RGB bytes over JPEG bytes.

``CR = sum(H * W * 3) / sum(jpeg bytes)`` over a set of images: a ratio of sums, so large
images weigh more. Lower means more fine detail survives JPEG compression.

Modes: ``jpeg95`` re-encodes every image in memory with Pillow's JPEG encoder at quality 95
(default 4:2:0 chroma subsampling, no optimize, baseline), the way the paper's generated images
were saved; ``file`` takes the size of the file on disk, which reproduces the paper's numbers
for a folder of q95 JPEGs.
"""
from __future__ import annotations

import io
import os

import numpy as np

from aesthetic4k_metrics.defaults import CR_MODES, JPEG_QUALITY
from aesthetic4k_metrics.errors import ImageError
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.image_input import DEFAULT_MAX_PIXELS, JPEG_MAX_SIDE, read_rgb

MODES = CR_MODES


def jpeg_side_problem(width: int, height: int) -> str | None:
    """Why a width x height image cannot be stored as JPEG (None when it can)."""
    if max(width, height) > JPEG_MAX_SIDE:
        return f"{width}x{height} has a side over {JPEG_MAX_SIDE:,} pixels, more than a JPEG can hold"
    return None


def encoder_settings(quality: int = JPEG_QUALITY) -> dict:
    """What the byte counts depend on, recorded next to every Compression Ratio."""
    import PIL
    from PIL import features

    return {"encoder": "Pillow JPEG", "quality": quality, "subsampling": "4:2:0", "optimize": False,
            "pillow": PIL.__version__, "libjpeg": features.version("jpg") or "unknown"}


def check_jpeg_encodable(width: int, height: int, name: str) -> None:
    """ImageError naming ``name`` when the Compression Ratio's q95 re-encode cannot take the image."""
    problem = jpeg_side_problem(width, height)
    if problem:
        raise ImageError(name, f"{problem}; Compression Ratio jpeg95 re-encodes every image as JPEG "
                               "(cr_mode='file' uses the file size instead)")


def jpeg_bytes_of_rgb(rgb: np.ndarray, quality: int = JPEG_QUALITY, name: str = "<array>") -> int:
    """Size in bytes of an H x W x 3 uint8 RGB array encoded by Pillow as JPEG.

    An image the encoder cannot take (a side over :data:`JPEG_MAX_SIDE`, or any other refusal of
    libjpeg) is an ImageError naming ``name``: a bad file, like one that cannot be decoded.
    """
    from PIL import Image

    check_jpeg_encodable(rgb.shape[1], rgb.shape[0], name)
    buffer = io.BytesIO()  # Pillow encodes with the GIL released: callers may run this on threads
    try:
        Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, format="JPEG", quality=quality)
    except (OSError, ValueError) as exc:
        raise ImageError(name, f"the JPEG encoder refused it ({exc})") from None
    return buffer.tell()


def jpeg_size(image, quality: int = JPEG_QUALITY, *, max_pixels: int | None = None) -> int:
    """JPEG size in bytes of one image (a path or an H x W x 3 uint8 RGB array), re-encoded in memory."""
    rgb = read_rgb(image, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    name = display_path(image) if isinstance(image, (str, bytes, os.PathLike)) else "<array>"
    return jpeg_bytes_of_rgb(rgb, quality, name)


def compression_ratio(raw_bytes: int, compressed_bytes: int) -> float:
    if compressed_bytes <= 0:
        return float("nan")
    return raw_bytes / compressed_bytes
