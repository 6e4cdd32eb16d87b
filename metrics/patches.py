"""The patch recipe of patch-FID / patch-KID: seeded 299 x 299 crops at evaluation resolution.

Recipe (ours; docs/protocol.md s5 lists published alternatives):

1. Bring the image to ``size x size`` exactly as FID does (shorter side to ``size`` with
   torchvision bilinear + antialias on uint8, center crop). Generated images are already
   ``size x size``, so their pixels are untouched.
2. Take ``count`` crops of 299 x 299 at that resolution, no resizing. The top-left corners are
   drawn uniformly (numpy PCG64) from a generator seeded by ``(seed, key)``, where ``key`` is
   the image's file stem: the reference and the generated image of a prompt get the SAME
   coordinates (paired crops), and the crops do not depend on batch order or process count.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from metrics.errors import UserError
from metrics.inception import INPUT_SIZE

PATCH_RECIPE = ("P crops of 299x299 at size x size (after the same resize/crop), corners uniform from "
                "numpy PCG64 seeded by sha256(seed/stem); same corners for reference and generated image")


def crop_positions(key: str, seed: int, count: int, height: int, width: int,
                   crop: int = INPUT_SIZE) -> np.ndarray:
    """(count, 2) array of (top, left) corners, reproducible from (seed, key)."""
    if height < crop or width < crop:
        raise UserError(f"image {key!r} is {width}x{height}, smaller than a {crop}x{crop} patch")
    digest = hashlib.sha256(f"{int(seed)}/{key}".encode()).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))
    tops = rng.integers(0, height - crop + 1, size=count)
    lefts = rng.integers(0, width - crop + 1, size=count)
    return np.stack([tops, lefts], axis=1)


def extract_patches(image: torch.Tensor, positions: np.ndarray, crop: int = INPUT_SIZE) -> torch.Tensor:
    """(3, H, W) pixels and (P, 2) corners -> (P, 3, crop, crop) float32 patches."""
    return torch.stack([image[:, top:top + crop, left:left + crop] for top, left in positions.tolist()]
                       ).to(torch.float32)
