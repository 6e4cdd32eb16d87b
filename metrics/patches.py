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
from typing import Optional

import numpy as np
import torch

from aesthetic4k_metrics.errors import UserError
from aesthetic4k_metrics.fid_resize import resized_pixels_at
from aesthetic4k_metrics.inception import INPUT_SIZE

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


def extract_patches(image: torch.Tensor, positions: np.ndarray, size: Optional[int] = None,
                    crop: int = INPUT_SIZE) -> torch.Tensor:
    """(3, H, W) pixels and (P, 2) corners at ``size x size`` (step 1) -> (P, 3, crop, crop) float32 patches.

    Only the patches' rows and columns of the resized image are computed (fid_resize.resized_pixels_at).
    """
    offsets = torch.arange(crop)
    rows = (torch.as_tensor(positions[:, 0]).unsqueeze(1) + offsets).reshape(-1)
    columns = (torch.as_tensor(positions[:, 1]).unsqueeze(1) + offsets).reshape(-1)
    grid = resized_pixels_at(image, size, rows, columns)      # patch k is the k-th diagonal block
    return torch.stack([grid[:, k * crop:(k + 1) * crop, k * crop:(k + 1) * crop] for k in range(len(positions))]
                       ).to(torch.float32)
