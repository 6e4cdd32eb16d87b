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

import numpy as np

MODES = ("jpeg95", "file")


def encoder_settings(quality: int = 95) -> dict:
    """What the byte counts depend on, recorded next to every Compression Ratio."""
    import PIL
    from PIL import features

    return {"encoder": "Pillow JPEG", "quality": quality, "subsampling": "4:2:0", "optimize": False,
            "pillow": PIL.__version__, "libjpeg": features.version("jpg") or "unknown"}


def jpeg_bytes_of_rgb(rgb: np.ndarray, quality: int = 95) -> int:
    """Size in bytes of an H x W x 3 uint8 RGB array encoded by Pillow as JPEG."""
    from PIL import Image

    buffer = io.BytesIO()  # Pillow encodes with the GIL released: callers may run this on threads
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.tell()


def jpeg_size(image, quality: int = 95, *, max_pixels: int | None = None) -> int:
    """JPEG size in bytes of one image (a path or an H x W x 3 uint8 RGB array), re-encoded in memory."""
    from aesthetic4k_metrics.image_input import DEFAULT_MAX_PIXELS, read_rgb

    return jpeg_bytes_of_rgb(read_rgb(image, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels), quality)


def compression_ratio(raw_bytes: int, compressed_bytes: int) -> float:
    if compressed_bytes <= 0:
        return float("nan")
    return raw_bytes / compressed_bytes
