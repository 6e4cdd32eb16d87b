"""Small synthetic images for tests (no test data is committed)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def natural(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image: smooth regions, edges and fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(x / 37.0) * np.cos(y / 53.0)
    texture = np.cumsum(rng.normal(0, 3, (height, width)), axis=1) % 40
    edges = 50 * ((x + 2 * y) // 97 % 2)
    gray = base + texture + edges
    rgb = np.stack([gray, gray * 0.9 + 10, gray * 0.8 + 20], axis=2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def save(array: np.ndarray, path, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path
