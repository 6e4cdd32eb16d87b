"""Perceptual hash (DCT pHash) for near-duplicate removal.

The image is reduced to 32 x 32 grey pixels (area averaging), transformed with a 2-D DCT, and
the 8 x 8 lowest frequencies (DC term excluded) are compared with their median: 63 bits that
survive resizing, recompression, small crops and mild colour changes, but not a different photo.

Threshold: two images are near-duplicates when their hashes differ in at most
``DEFAULT_THRESHOLD`` = 8 of 63 bits. Re-encodes, resizes and small brightness changes of one
photo land at 0-4 bits; unrelated photographs average ~31 bits (binomial, sd ~4), so 8 bits
leaves a wide margin on both sides. Burst shots of one scene usually fall under it too, which is
what a curated benchmark wants.
"""
from __future__ import annotations

import numpy as np

HASH_SIDE = 32
LOW_FREQUENCIES = 8
DEFAULT_THRESHOLD = 8


def phash(rgb: np.ndarray) -> int:
    """63-bit DCT perceptual hash of an H x W x 3 uint8 RGB (or H x W grey) array."""
    import cv2

    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.astype(np.float32), (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
    coefficients = cv2.dct(small)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].ravel()[1:]  # drop the DC term (brightness)
    bits = coefficients > np.median(coefficients)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")
