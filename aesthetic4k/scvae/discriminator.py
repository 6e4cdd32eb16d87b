"""The SC-VAE's patch discriminator: strided 3 x 3 convolutions with spectral norm, one score per patch.

The layout is that of the upstream ``sc-vae/discriminator_vae.py``: ``depth`` convolutions of
stride 2 (the first without normalisation, the others followed by instance norm), leaky ReLU
0.2, widths doubling up to ``channels``, a 1 x 1 convolution to one channel and a sigmoid. A 512
px image gives an 8 x 8 map of scores in (0, 1) with the default depth 6.

Because of the sigmoid the hinge loss never reaches its margins: the discriminator's loss is
``2 + mean(D(fake)) - mean(D(real))`` (plus the gradient penalty), as upstream.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def stage_widths(channels: int, depth: int) -> list:
    """Output channels of the ``depth`` strided convolutions: doubling, capped at ``channels``."""
    first = max(depth - 3, 3)
    return [channels // 2 ** max(first - i, 0) for i in range(depth)]


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int = 512, depth: int = 6, in_channels: int = 3):
        super().__init__()
        widths = stage_widths(channels, depth)
        layers, previous = [], in_channels
        for index, width in enumerate(widths):
            layers.append(spectral_norm(nn.Conv2d(previous, width, kernel_size=3, stride=2, padding=1)))
            if index:
                layers.append(nn.InstanceNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            previous = width
        self.body = nn.Sequential(*layers)
        self.score = nn.Conv2d(previous, 1, kernel_size=1)

    def forward(self, images):
        return self.score(self.body(images)).sigmoid()
