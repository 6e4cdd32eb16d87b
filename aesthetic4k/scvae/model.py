"""Student and teacher of the SC-VAE: a VAE decode that also returns the decoder's last activation.

The activation is the input of ``decoder.conv_out``: the output of the decoder's last norm and
activation, the "intermediate layer" the scale-consistency loss compares. For the F16 student it
is taken before the partitioned nearest upsample, so it is half the teacher's size.
"""
from __future__ import annotations

import torch
from torch import nn


class DecodeWithActivation(nn.Module):
    """``forward(z) -> (image, activation)`` for a diffusers AutoencoderKL (F8 or F16)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self._seen = []
        self._hook = vae.decoder.conv_out.register_forward_pre_hook(self._record)

    def remove_hook(self) -> None:
        """Stop recording (a wrapper made only for one measurement)."""
        self._hook.remove()

    def _record(self, module, inputs):
        self._seen.append(inputs[0])

    def forward(self, z):
        self._seen.clear()
        image = self.vae.decode(z).sample
        activation = self._seen[-1]
        self._seen.clear()
        return image, activation

    def encode(self, pixels, generator):
        """A posterior sample ``mean + std * eps`` (eps from ``generator`` on the CPU), without gradient."""
        with torch.no_grad():
            dist = self.vae.encode(pixels).latent_dist
            eps = torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device, dist.mean.dtype)
            return dist.mean + dist.std * eps


def trainable_decoder(vae) -> list:
    """Freeze ``vae`` except its decoder (as upstream); returns the decoder's parameters."""
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters())
    for param in params:
        param.requires_grad_(True)
    return params
