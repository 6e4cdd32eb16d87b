"""A 2048-d stand-in for the FID Inception, saved as TorchScript: loaded like the real file, fast.

The tests use it through the ``tiny_inception`` fixture; ``benchmarks.gpu_check --quick`` too.
"""
from __future__ import annotations

from pathlib import Path


def save_tiny_inception(path) -> Path:
    """Seeded random weights of a small conv net with 2048 pool features, written to ``path``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    network = torch.jit.script(nn.Sequential(nn.Conv2d(3, 32, 7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(8),
                                             nn.Flatten()))
    network.save(str(path))
    return Path(path)
